//! Purposes of use: the three spellings of an HL7 v3-ActReason code normalised to the bare code.

/// The v3-ActReason code system's canonical URL.
pub const ACT_REASON_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// The v3-ActReason code system's OID (UDAP B2B tokens name purposes by it).
pub const ACT_REASON_OID: &str = "urn:oid:2.16.840.1.113883.5.8";

/// The bare v3-ActReason code of a purpose written as `TREAT`,
/// `urn:oid:2.16.840.1.113883.5.8#TREAT` or `http://terminology.hl7.org/CodeSystem/v3-ActReason|TREAT`;
/// `None` for anything else (another code system, a malformed code), which no purpose rule could
/// match.
pub fn normalise(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let code = if let Some(rest) = raw.strip_prefix(ACT_REASON_OID) {
        rest.strip_prefix('#')?
    } else if let Some(rest) = raw.strip_prefix(ACT_REASON_SYSTEM) {
        rest.strip_prefix('|')?
    } else {
        raw
    };
    is_code(code).then(|| code.to_owned())
}

/// v3-ActReason codes are upper-case letters, with digits and `_` in a few (e.g. `_PurposeOfUse`
/// is abstract, but the shape is what matters here).
fn is_code(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_spellings() {
        for s in [
            "TREAT",
            " TREAT ",
            "urn:oid:2.16.840.1.113883.5.8#TREAT",
            "http://terminology.hl7.org/CodeSystem/v3-ActReason|TREAT",
        ] {
            assert_eq!(normalise(s).as_deref(), Some("TREAT"), "{s}");
        }
    }

    #[test]
    fn other_systems_and_junk_are_none() {
        for s in [
            "",
            "urn:oid:2.16.840.1.113883.5.8|TREAT",
            "urn:oid:1.2.3#TREAT",
            "http://example.org/purposes|TREAT",
            "http://terminology.hl7.org/CodeSystem/v3-ActReason#TREAT",
            "TREAT ETREAT",
            "TR\"EAT",
        ] {
            assert_eq!(normalise(s), None, "{s:?}");
        }
    }
}
