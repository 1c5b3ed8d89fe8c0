//! `anchorgate validate` end to end: the real binary, one JSON line per file, and its exit codes.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;

fn run(files: &[&std::path::Path]) -> (i32, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_anchorgate"))
        .arg("validate")
        .args(files)
        .output()
        .unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code().unwrap(), lines)
}

#[test]
fn valid_invalid_unparseable_and_unreadable() {
    let dir = std::env::temp_dir().join(format!("anchorgate-validate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    let bad = dir.join("bad.json");
    let broken = dir.join("broken.json");
    let xml = dir.join("good.xml");
    std::fs::write(&good, r#"{"resourceType":"Patient","gender":"female"}"#).unwrap();
    std::fs::write(&bad, r#"{"resourceType":"Patient","gender":"nope"}"#).unwrap();
    std::fs::write(&broken, r#"{"resourceType":"#).unwrap();
    std::fs::write(
        &xml,
        r#"<Patient xmlns="http://hl7.org/fhir"><gender value="male"/></Patient>"#,
    )
    .unwrap();

    let (code, lines) = run(&[&good, &xml]);
    assert_eq!(code, 0, "{lines:?}");
    assert!(lines.iter().all(|l| l["valid"] == true));
    assert_eq!(lines[0]["outcome"]["resourceType"], "OperationOutcome");

    let (code, lines) = run(&[&good, &bad, &broken]);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["valid"], false);
    assert_eq!(lines[1]["outcome"]["issue"][0]["code"], "code-invalid");
    assert_eq!(
        lines[1]["outcome"]["issue"][0]["expression"][0],
        "Patient.gender"
    );
    assert_eq!(lines[2]["valid"], false);
    assert_eq!(lines[2]["outcome"]["issue"][0]["code"], "structure");

    let (code, lines) = run(&[&good, &dir.join("missing.json")]);
    assert_eq!(code, 2);
    assert!(lines.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
