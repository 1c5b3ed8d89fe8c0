//! `anchorgate validate` end to end: the real binary, one JSON line per file, and its exit codes.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;

fn run(files: &[&std::path::Path]) -> (i32, Vec<Value>) {
    run_with(&[], files)
}

fn run_with(flags: &[&str], files: &[&std::path::Path]) -> (i32, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_anchorgate"))
        .arg("validate")
        .args(flags)
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

#[test]
fn profile_and_load_flags() {
    let dir = std::env::temp_dir().join(format!("anchorgate-validate-prof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bare = dir.join("bare.json");
    let named = dir.join("named.json");
    let flagged = dir.join("flagged.json");
    let sd = dir.join("needs-gender.json");
    std::fs::write(&bare, r#"{"resourceType":"Patient"}"#).unwrap();
    std::fs::write(
        &named,
        r#"{"resourceType":"Patient","gender":"female","name":[{"family":"Ng"}],"birthDate":"1970"}"#,
    )
    .unwrap();
    std::fs::write(
        &flagged,
        r#"{"resourceType":"Patient","meta":{"profile":["http://example.org/sd/needs-gender"]}}"#,
    )
    .unwrap();
    std::fs::write(
        &sd,
        r#"{"resourceType":"StructureDefinition","url":"http://example.org/sd/needs-gender","type":"Patient",
            "kind":"resource","abstract":false,"derivation":"constraint",
            "baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient",
            "differential":{"element":[{"id":"Patient.gender","path":"Patient.gender","min":1}]}}"#,
    )
    .unwrap();
    let ips = "http://hl7.org/fhir/uv/ips/StructureDefinition/Patient-uv-ips";

    // An embedded profile by URL.
    let (code, lines) = run_with(&["--profile", ips], &[&named, &bare]);
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(lines[0]["valid"], true);
    assert_eq!(lines[1]["valid"], false);

    // A profile given as a file.
    let sd_arg = sd.to_str().unwrap();
    let (code, lines) = run_with(&["--profile", sd_arg], &[&bare]);
    assert_eq!(code, 1);
    assert_eq!(lines[0]["valid"], false);
    let (code, _) = run_with(&["--profile", sd_arg], &[&named]);
    assert_eq!(code, 0);

    // --load makes meta.profile known; without it, an unknown profile is only a warning.
    let (code, lines) = run(&[&flagged]);
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines[0]["outcome"]["issue"][0]["severity"], "warning");
    let (code, _) = run_with(&["--load", sd_arg], &[&flagged]);
    assert_eq!(code, 1);
    // A loaded profile is usable by URL.
    let (code, _) = run_with(
        &[
            "--load",
            sd_arg,
            "--profile",
            "http://example.org/sd/needs-gender",
        ],
        &[&named],
    );
    assert_eq!(code, 0);

    // Usage errors: unknown profile, unreadable --load.
    let (code, lines) = run_with(&["--profile", "http://example.org/unknown"], &[&named]);
    assert_eq!(code, 2);
    assert!(lines.is_empty());
    let missing = dir.join("missing.json");
    let (code, _) = run_with(&["--load", missing.to_str().unwrap()], &[&named]);
    assert_eq!(code, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
