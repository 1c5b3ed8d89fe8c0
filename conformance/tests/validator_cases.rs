//! CI gate on the HL7 validator cases: no false rejects, and verdict agreement at or above the floor.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use anchorgate_conformance::validator_cases::{run, REPO_CASES};

/// The committed agreement floor, in percent of the cases run; raise it as the validator improves.
const FLOOR_PERCENT: f64 = 95.0;

#[test]
fn hl7_validator_cases_meet_the_floor_with_no_false_rejects() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cases = root.join(REPO_CASES);
    let report = run(&cases).unwrap_or_else(|e| {
        panic!(
            "{e:#}\nThe HL7 validator cases are committed at {REPO_CASES} (tests/data/README.md): \
             restore them with `git checkout -- tests/data`, or remake them from ../shared/data with \
             `python3 tests/data/make-subset.py`"
        )
    });
    let md = report.to_markdown();
    let out = root.join("target/conformance");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("validator-report.md"), &md).unwrap();
    println!("{md}");
    assert!(report.false_rejects().is_empty(), "{md}");
    let (agree, run) = report.agreement();
    assert!(run >= 150, "only {run} cases ran");
    let pct = 100.0 * agree as f64 / run as f64;
    assert!(
        pct >= FLOOR_PERCENT,
        "agreement {pct:.1}% is below the floor {FLOOR_PERCENT}%\n{md}"
    );
}
