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

/// Expected-valid cases that contradict the R4 rules and the reference validator's own verdict on the
/// same content elsewhere in this set; they still count against agreement, but are not false rejects.
///
/// * `contained-resource-bad-id-ignore` validates the same file as `contained-resource-bad-id` (expected
///   invalid: a 65-character contained id) with contained-resource checking turned off by a runner
///   option (`validateContains: IGNORE` in the HL7 manifest); we always validate contained resources.
/// * `aggregation-apart-good4` is an Encounter without `class`, which R4 requires (1..1); the same
///   Encounter inside `aggregation-bundle-good4`/`-bad4` is expected invalid for exactly that reason. It
///   is valid only under R5 (`Encounter.class` 0..*), which the manifest's default version means.
const CONTRADICTORY: &[&str] = &[
    "contained-resource-bad-id-ignore",
    "aggregation-apart-good4",
];

#[test]
fn hl7_base_cases_agreement() {
    let Some(data) = data_dir() else {
        eprintln!("skipped: ../shared/data is absent");
        return;
    };
    let dir = data.join("fhir-validator-cases");
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let (mut agree, mut total) = (0usize, 0usize);
    let mut false_rejects = Vec::new();
    let mut misses = Vec::new();
    for case in cases["cases"].as_array().unwrap() {
        if case["step"] != "base" {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        let file = dir.join("files").join(case["file"].as_str().unwrap());
        let format = if case["format"] == "xml" {
            Format::Xml
        } else {
            Format::Json
        };
        let expected = case["expected"]["valid"].as_bool().unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let (ours, parsed, detail) = match parse(format, &bytes) {
            Ok(v) => {
                let out = Validator::r4().validate(&v);
                (is_valid(&out), true, format!("{:?}", out.issues))
            }
            Err(e) => (false, false, e.to_string()),
        };
        total += 1;
        if ours == expected {
            agree += 1;
        } else if expected && parsed && !CONTRADICTORY.contains(&name) {
            false_rejects.push(format!("{name}: {detail}"));
        } else {
            misses.push(format!(
                "{name} (expected valid={expected}): {}",
                &detail[..detail.len().min(300)]
            ));
        }
    }
    eprintln!(
        "HL7 base cases: {agree}/{total} verdicts agree ({:.1}%)",
        100.0 * agree as f64 / total as f64
    );
    for m in &misses {
        eprintln!("  disagree: {m}");
    }
    assert!(
        false_rejects.is_empty(),
        "false rejects:\n{}",
        false_rejects.join("\n")
    );
}
