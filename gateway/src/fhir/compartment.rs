//! Which patients' compartments a resource belongs to (R4 CompartmentDefinition/patient), so the gateway
//! knows whose consent governs it.
//!
//! The table of element paths is generated from the R4 definitions (`profiles/build-compartment.py`
//! writes `compartment_table.rs`). Only literal references to `Patient` count: relative (`Patient/x`),
//! absolute (`https://h/fhir/Patient/x`) and versioned ones. Contained (`#x`) and `urn:` references
//! cannot name a stored patient and are ignored, as are logical (identifier-only) references.

use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::Value;

use super::lazy::RawObject;
use super::reference::{local_reference, split};

#[path = "compartment_table.rs"]
mod table;

/// Whether resources of this type can be in a Patient compartment at all (Patient included).
pub fn is_compartment_type(resource_type: &str) -> bool {
    paths(resource_type).is_some()
}

fn paths(resource_type: &str) -> Option<&'static [&'static [&'static str]]> {
    table::PATIENT_COMPARTMENT
        .binary_search_by(|(t, _)| (*t).cmp(resource_type))
        .ok()
        .map(|i| table::PATIENT_COMPARTMENT[i].1)
}

/// Whether [`patient_ids`] can read a top-level element (by name) of a `resource_type` resource.
pub fn element_reader(resource_type: &str) -> impl Fn(&str) -> bool {
    let patient = resource_type == "Patient";
    let paths = paths(resource_type).unwrap_or_default();
    move |name| (patient && name == "id") || paths.iter().any(|p| p.first() == Some(&name))
}

/// The ids of the patients whose compartment `resource` is in, without duplicates, in document order.
/// A Patient is in its own compartment (and in those of the patients it links to). Empty for a type
/// outside the compartment (Practitioner, Medication, ...) or a resource that names no patient.
pub fn patient_ids(resource: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(rtype) = resource.get("resourceType").and_then(Value::as_str) else {
        return out;
    };
    if rtype == "Patient" {
        if let Some(id) = resource.get("id").and_then(Value::as_str) {
            out.push(id.to_owned());
        }
    }
    for path in paths(rtype).unwrap_or_default() {
        collect(resource, path, &mut out);
    }
    out
}

/// [`patient_ids`] read straight from a resource's split text, without building trees: `None` when
/// the text takes a shape this does not read (a member name with escapes), for callers to fall back
/// on the tree. Gives exactly what [`patient_ids`] gives on the parsed resource otherwise.
pub fn patient_ids_raw(resource_type: &str, resource: &RawObject<'_>) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    if resource_type == "Patient" {
        if let Some(id) = resource.get("id") {
            if let Ok(id) = serde_json::from_str::<Cow<'_, str>>(id.get()) {
                out.push(id.into_owned());
            }
        }
    }
    for path in paths(resource_type).unwrap_or_default() {
        if let Some((head, rest)) = path.split_first() {
            if let Some(v) = resource.get(head) {
                collect_raw(v, rest, &mut out)?;
            }
        }
    }
    Some(out)
}

fn collect_raw(v: &RawValue, path: &[&str], out: &mut Vec<String>) -> Option<()> {
    match v.get().as_bytes().first() {
        Some(b'[') => {
            for item in serde_json::from_str::<Vec<&RawValue>>(v.get()).ok()? {
                collect_raw(item, path, out)?;
            }
        }
        Some(b'{') => {
            let obj = RawObject::parse(v.get()).ok()?;
            match path.split_first() {
                Some((head, rest)) => {
                    if let Some(child) = obj.get(head) {
                        collect_raw(child, rest, out)?;
                    }
                }
                None => {
                    let reference = obj
                        .get("reference")
                        .and_then(|r| serde_json::from_str::<Cow<'_, str>>(r.get()).ok());
                    push_patient(reference.as_deref(), out);
                }
            }
        }
        _ => {}
    }
    Some(())
}

fn collect(v: &Value, path: &[&str], out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect(i, path, out)),
        Value::Object(obj) => match path.split_first() {
            Some((head, rest)) => {
                if let Some(child) = obj.get(*head) {
                    collect(child, rest, out);
                }
            }
            None => push_patient(obj.get("reference").and_then(Value::as_str), out),
        },
        _ => {}
    }
}

/// Adds the patient a `reference` names, if it names one not already in `out`.
fn push_patient(reference: Option<&str>, out: &mut Vec<String>) {
    let patient = reference
        .and_then(local_reference)
        .and_then(split)
        .filter(|(t, _)| *t == "Patient")
        .map(|(_, id)| id);
    if let Some(id) = patient {
        if !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(table::PATIENT_COMPARTMENT
            .windows(2)
            .all(|w| w[0].0 < w[1].0));
        assert!(is_compartment_type("Observation"));
        assert!(is_compartment_type("Patient"));
        assert!(!is_compartment_type("Practitioner"));
        assert!(!is_compartment_type("Medication"));
    }

    #[test]
    fn observation_by_subject_and_performer() {
        let obs = json!({"resourceType": "Observation", "id": "o",
            "subject": {"reference": "Patient/p1"},
            "performer": [{"reference": "Practitioner/x"}, {"reference": "https://h/fhir/Patient/p2/_history/4"}]});
        assert_eq!(patient_ids(&obs), vec!["p1", "p2"]);
    }

    #[test]
    fn patient_is_its_own_and_linked() {
        let p = json!({"resourceType": "Patient", "id": "p1",
            "link": [{"other": {"reference": "Patient/p9"}, "type": "seealso"}]});
        assert_eq!(patient_ids(&p), vec!["p1", "p9"]);
    }

    /// The text reader agrees with the tree reader, on ordinary and awkward shapes.
    #[test]
    fn raw_reader_agrees_with_the_tree_reader() {
        let cases = [
            r#"{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"performer":[{"reference":"Practitioner/x"},{"reference":"https://h/fhir/Patient/p2/_history/4"}]}"#,
            r#"{"resourceType":"Patient","id":"p1","link":[{"other":{"reference":"Patient/p9"}}]}"#,
            r#"{"resourceType":"Patient","id":"p\u0031","link":{"other":[{"reference":"Patient\/p9"}]}}"#,
            r#"{"resourceType":"Appointment","participant":[{"actor":{"reference":"Patient/p1"}},[{"actor":{"reference":"Patient/p2"}}],{"actor":"Patient/p3"},{"actor":{"reference":7}}]}"#,
            r#"{"resourceType":"Encounter","subject":{"reference":"Patient/a"},"subject":{"reference":"Patient/b"}}"#,
            r#"{"resourceType":"Encounter","subject":{"reference":"Patient/a","reference":"Group/g"}}"#,
            r#"{"resourceType":"Encounter","subject":[[{"reference":"Patient/a"}],null,true]}"#,
            r##"{"resourceType":"Condition","subject":{"reference":"#p"},"asserter":{"reference":"urn:uuid:x"}}"##,
            r#"{"resourceType":"Practitioner","id":"x"}"#,
            r#"{"resourceType":"Patient","id":7}"#,
        ];
        for text in cases {
            let tree: Value = serde_json::from_str(text).unwrap();
            let raw = RawObject::parse(text).unwrap();
            let rtype = tree["resourceType"].as_str().unwrap();
            assert_eq!(
                patient_ids_raw(rtype, &raw),
                Some(patient_ids(&tree)),
                "{text}"
            );
        }
        // A member name with escapes is not read here: the caller parses the tree.
        let escaped = r#"{"resourceType":"Encounter","subject":{"refer\u0065nce":"Patient/a"}}"#;
        let raw = RawObject::parse(escaped).unwrap();
        assert_eq!(patient_ids_raw("Encounter", &raw), None);
    }

    #[test]
    fn nested_paths_and_duplicates() {
        let a = json!({"resourceType": "Appointment",
            "participant": [{"actor": {"reference": "Patient/p1"}}, {"actor": {"reference": "Patient/p1"}},
                            {"actor": {"reference": "Location/l"}}]});
        assert_eq!(patient_ids(&a), vec!["p1"]);
        let c = json!({"resourceType": "Condition", "subject": {"reference": "Patient/p1"},
            "asserter": {"reference": "Patient/p3"}, "encounter": {"reference": "Encounter/e"}});
        assert_eq!(patient_ids(&c), vec!["p1", "p3"]);
        let e = json!({"resourceType": "Encounter", "subject": {"reference": "Patient/p1"},
            "participant": [{"individual": {"reference": "Patient/p2"}}]});
        assert_eq!(
            patient_ids(&e),
            vec!["p1"],
            "Encounter.participant is not a compartment link"
        );
    }

    #[test]
    fn unusable_references_are_ignored() {
        let obs = json!({"resourceType": "Observation",
            "subject": {"reference": "#contained-patient"},
            "performer": [{"reference": "urn:uuid:1"}, {"identifier": {"value": "x"}}, {"reference": "Group/g"}]});
        assert!(patient_ids(&obs).is_empty());
        assert!(patient_ids(&json!({"resourceType": "Practitioner", "id": "x"})).is_empty());
        assert!(patient_ids(&json!({"id": "x"})).is_empty());
    }
}
