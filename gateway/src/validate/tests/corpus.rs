//! Corpus tests: every Synthea resource is valid; verdict agreement with the HL7 validator's base cases.
//! Both corpora are the repository's (`tests/data/`).

use serde_json::Value;

use crate::fhir::format::Format;
use crate::fhir::parse::parse;
use crate::test_data;
use crate::validate::{is_valid, Validator};

/// Every resource of the Synthea NDJSON subset, in file order (the export log left out).
fn synthea() -> Vec<Value> {
    test_data::synthea_ndjson()
        .into_iter()
        .filter(|(name, _)| name != "log.ndjson")
        .flat_map(|(_, text)| {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| parse(Format::Json, l.as_bytes()).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

/// Synthea resources known to be invalid in base R4, with why. Empty: none found.
const SYNTHEA_ALLOWLIST: &[(&str, &str)] = &[];

#[test]
fn synthea_resources_are_valid() {
    let (mut total, mut failures) = (0usize, Vec::new());
    for v in synthea() {
        total += 1;
        let key = format!(
            "{}/{}",
            v["resourceType"].as_str().unwrap(),
            v["id"].as_str().unwrap_or("")
        );
        let out = Validator::r4().validate(&v);
        if !is_valid(&out) && !SYNTHEA_ALLOWLIST.iter().any(|(k, _)| *k == key) {
            failures.push(format!("{key}: {:?}", out.issues));
        }
    }
    eprintln!("synthea: {total} resources, {} rejected", failures.len());
    assert!(
        total > 1000,
        "expected the Synthea corpus, found {total} resources"
    );
    assert!(
        failures.is_empty(),
        "{} false rejects:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// The HL7 validator cases run in `conformance/` (`validator_cases`), with the agreement floor and the
// false-reject gate.

/// The JSON Schema second opinion never rejects a Synthea resource, and on the HL7 cases it finds
/// nothing the StructureDefinition walk missed (the walk is at least as strict as the schema).
#[test]
fn json_schema_agrees_with_the_walk_on_the_corpora() {
    let mut schema_rejects = Vec::new();
    let corpus = synthea();
    let total = corpus.len();
    for v in &corpus {
        let issues = crate::validate::schema::check(v);
        if !issues.is_empty() {
            schema_rejects.push(format!("{}: {:?}", v["resourceType"], issues[0]));
        }
    }
    assert!(total > 1000);
    assert!(schema_rejects.is_empty(), "{schema_rejects:?}");

    let files = test_data::validator_cases();
    let cases: Value = serde_json::from_slice(&files["cases.json"]).unwrap();
    let (mut walk_missed, mut schema_false) = (Vec::new(), Vec::new());
    for c in cases["cases"].as_array().unwrap() {
        if c["step"] != "base" {
            continue;
        }
        let format = if c["format"] == "xml" {
            Format::Xml
        } else {
            Format::Json
        };
        let bytes = &files[&format!("files/{}", c["file"].as_str().unwrap())];
        let Ok(v) = parse(format, bytes) else {
            continue;
        };
        let walk_ok = is_valid(&Validator::r4().validate(&v));
        let schema_ok = crate::validate::schema::check(&v).is_empty();
        let name = c["name"].as_str().unwrap().to_owned();
        if walk_ok && !schema_ok {
            walk_missed.push(name.clone());
        }
        if c["expected"]["valid"] == true && !schema_ok {
            schema_false.push(name);
        }
    }
    eprintln!("schema finds what the walk missed: {walk_missed:?}; schema rejects expected-valid: {schema_false:?}");
    assert!(walk_missed.is_empty(), "{walk_missed:?}");
    // The only expected-valid cases the schema refuses are the two the walk also refuses, and which
    // contradict R4 (see the conformance runner's CONTRADICTORY list).
    schema_false.sort();
    assert_eq!(
        schema_false,
        [
            "aggregation-apart-good4",
            "contained-resource-bad-id-ignore"
        ]
    );
}
