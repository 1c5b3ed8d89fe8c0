//! Corpus tests: every Synthea resource is valid; verdict agreement with the HL7 validator's base cases.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::fhir::format::Format;
use crate::fhir::parse::parse;
use crate::validate::{is_valid, Validator};

/// `../shared/data` from the workspace root, if present.
fn data_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    dir.is_dir().then_some(dir)
}

/// Synthea resources known to be invalid in base R4, with why. Empty: none found.
const SYNTHEA_ALLOWLIST: &[(&str, &str)] = &[];

#[test]
fn synthea_resources_are_valid() {
    let Some(data) = data_dir() else {
        eprintln!("skipped: ../shared/data is absent");
        return;
    };
    let dir = data.join("synthea/ndjson-10-patients");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson") && !p.ends_with("log.ndjson"))
        .collect();
    files.sort();
    let (mut total, mut failures) = (0usize, Vec::new());
    for f in &files {
        for line in std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let v: Value = parse(Format::Json, line.as_bytes()).unwrap();
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
