//! The R4 JSON Schema pass: HL7's `fhir.schema.json` (embedded from `profiles/r4-schema.json.gz`),
//! evaluated by the `jsonschema` crate, as an independent second opinion on the structure.
//!
//! The StructureDefinition walk ([`super::walk`]) checks everything the schema does and more, with
//! HL7-style messages, so the schema's issues are only reported for what the walk did not already find
//! (see [`super::Validator::validate`]); a disagreement is then visible instead of silently trusted.
//! Enumerated codes are left to the binding checks (see [`check`]).
//! `profiles/build-schema.py` says how the schema was made fast to evaluate (discriminated dispatch
//! instead of a 146-way `oneOf`).

use std::io::Read;
use std::sync::LazyLock;

use flate2::read::GzDecoder;
use serde_json::Value;

use crate::fhir::outcome::{Issue, IssueType};

/// The compressed schema.
static R4_SCHEMA: &[u8] = include_bytes!("../../../profiles/r4-schema.json.gz");

/// The compiled schema, or why it could not be compiled (only a corrupt build could cause that).
static COMPILED: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(compile);

fn compile() -> Result<jsonschema::Validator, String> {
    let mut text = String::new();
    GzDecoder::new(R4_SCHEMA)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot decompress the R4 JSON Schema: {e}"))?;
    let schema: Value =
        serde_json::from_str(&text).map_err(|e| format!("the R4 JSON Schema is not JSON: {e}"))?;
    jsonschema::options()
        .should_validate_formats(false)
        .build(&schema)
        .map_err(|e| format!("the R4 JSON Schema does not compile: {e}"))
}

/// Checks `resource` against the R4 JSON Schema; every issue is an error located by FHIRPath.
pub fn check(resource: &Value) -> Vec<Issue> {
    let validator = match &*COMPILED {
        Ok(v) => v,
        Err(why) => return vec![Issue::error(IssueType::Exception, why.clone())],
    };
    if validator.is_valid(resource) {
        return Vec::new();
    }
    validator
        .iter_errors(resource)
        // Codes are the binding checks' business: they judge required bindings against the R4
        // expansions as HL7's validator does, while the schema's `enum`s are a frozen copy that refuses,
        // for example, StructureDefinitions HL7 accepts (`fhirVersion`).
        .filter(|e| {
            !matches!(
                e.kind(),
                jsonschema::error::ValidationErrorKind::Enum { .. }
            )
        })
        .map(|e| {
            let keyword = e.kind().keyword();
            // Never the instance value (it may be PHI): the keyword, and for unknown properties their
            // names, which are structure.
            let what = match e.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    format!("unrecognized properties {unexpected:?}")
                }
                _ => format!("the value fails the schema's '{keyword}' rule"),
            };
            Issue::error(IssueType::Structure, format!("R4 JSON Schema: {what}"))
                .at(fhirpath(resource, e.instance_path().as_str()))
        })
        .collect()
}

/// Whether the compiled schema is available (it is, unless the build is corrupt).
pub fn available() -> bool {
    COMPILED.is_ok()
}

/// A JSON pointer into `resource` as a FHIRPath expression (`/name/0/given` → `Patient.name[0].given`).
fn fhirpath(resource: &Value, pointer: &str) -> String {
    let mut out = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Resource")
        .to_owned();
    let mut at = Some(resource);
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        match at {
            Some(Value::Array(list)) => {
                out.push_str(&format!("[{seg}]"));
                at = seg.parse::<usize>().ok().and_then(|i| list.get(i));
            }
            Some(v) => {
                out.push('.');
                out.push_str(&seg);
                at = v.get(seg.as_str());
            }
            None => {
                out.push('.');
                out.push_str(&seg);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn valid_resources_pass_and_nested_ones_are_dispatched_by_type() {
        assert!(available());
        assert!(check(&json!({"resourceType": "Patient", "gender": "female"})).is_empty());
        let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Patient", "gender": "female"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}}]});
        assert!(check(&bundle).is_empty());
    }

    #[test]
    fn schema_errors_are_located_and_never_echo_values() {
        let p = json!({"resourceType": "Patient", "birthDate": "SECRET-VALUE", "gender": "not-a-code",
                       "name": [{"given": ["a", 7]}], "favourite": 1});
        let issues = check(&p);
        let at: Vec<&str> = issues.iter().map(|i| i.expression[0].as_str()).collect();
        assert!(at.contains(&"Patient.birthDate"), "{issues:?}");
        // Codes are left to the binding checks.
        assert!(!at.contains(&"Patient.gender"), "{issues:?}");
        assert!(at.contains(&"Patient.name[0].given[1]"), "{issues:?}");
        assert!(
            issues.iter().any(|i| i.diagnostics.contains("favourite")),
            "{issues:?}"
        );
        assert!(!format!("{issues:?}").contains("SECRET"));
        // A nested resource is checked against its own type.
        let b = json!({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"resource": {"resourceType": "Patient", "birthDate": "x"}}]});
        let issues = check(&b);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].expression, ["Bundle.entry[0].resource.birthDate"]);
    }
}
