//! FHIR `Reference.reference` strings reduced to the local `Type/id` form the gateway compares.

use crate::fhir::route::{is_valid_id, resource_type};

/// The `Type/id` a literal reference points at: `Patient/x`, `https://h/fhir/Patient/x` and
/// `Patient/x/_history/2` all give `Patient/x`. Contained (`#x`), `urn:uuid:`/`urn:oid:` and anything that
/// is not an R4 resource type with a valid id give `None`: such references cannot be matched to a stored
/// resource, so they name nobody.
pub fn local_reference(reference: &str) -> Option<&str> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    // A version-specific reference names the same resource.
    let unversioned = match reference.find("/_history/") {
        Some(i) => &reference[..i],
        None => reference,
    };
    let unversioned = unversioned.trim_end_matches('/');
    let (head, id) = unversioned.rsplit_once('/')?;
    let rtype = head.rsplit_once('/').map_or(head, |(_, t)| t);
    let absolute = head.len() != rtype.len();
    if absolute && !head.contains("://") {
        return None;
    }
    if resource_type(rtype).is_none() || !is_valid_id(id) {
        return None;
    }
    let start = unversioned.len() - rtype.len() - 1 - id.len();
    Some(&unversioned[start..])
}

/// Splits a local reference into its type and id.
pub fn split(local: &str) -> Option<(&str, &str)> {
    local.split_once('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_forms() {
        assert_eq!(local_reference("Patient/p1"), Some("Patient/p1"));
        assert_eq!(
            local_reference("https://ehr.example/fhir/Patient/p1"),
            Some("Patient/p1")
        );
        assert_eq!(
            local_reference("Observation/o1/_history/3"),
            Some("Observation/o1")
        );
        assert_eq!(
            local_reference("http://x/fhir/Group/g-1/_history/1"),
            Some("Group/g-1")
        );
    }

    #[test]
    fn unmatchable_forms() {
        for r in [
            "#p1",
            "urn:uuid:0b8f7f2c-0000-4000-8000-000000000000",
            "Patient",
            "Patient/",
            "NotAType/x",
            "Patient/bad id",
            "x/Patient/p1",
            "",
        ] {
            assert_eq!(local_reference(r), None, "{r}");
        }
    }
}
