//! The HL7 validator-case runner: our validator's verdicts, error counts and error locations against the
//! HL7 Java validator's expected outcomes (`../shared/data/fhir-validator-cases`).
//!
//! Both steps run: `base` (the core specification, plus the profiles in the instance's `meta.profile`)
//! and `profile` (also against the StructureDefinition in `validate_against`). Each case's `supporting`
//! and `profiles` files are loaded into an overlay over a shared one holding every case's files: the
//! HL7 harness (`ValidationTests`) caches each case's definitions into one worker context per FHIR
//! version, so its expected outcomes assume what other cases loaded (`profile-choice-2` uses Address
//! profiles that only the `aggregation-*` cases load).

use std::collections::BTreeSet;
use std::path::Path;

use anchorgate::fhir::parse::parse;
use anchorgate::fhir::Format;
use anchorgate::validate::definitions::Definitions;
use anchorgate::validate::{is_valid, ValidateOptions, Validator};
use anyhow::{Context, Result};
use serde_json::Value;

/// Expected-valid cases that contradict R4 and the reference validator's own verdict on the same content
/// elsewhere in this set; they count against agreement but are not false rejects.
///
/// * `contained-resource-bad-id-ignore` validates the same file as `contained-resource-bad-id` (expected
///   invalid: a 65-character contained id) with contained-resource checking turned off by a runner option
///   of the HL7 harness; we always validate contained resources.
/// * `aggregation-apart-good4` is an Encounter without `class`, which R4 requires (1..1); the same
///   Encounter inside `aggregation-bundle-good4`/`-bad4` is expected invalid for exactly that reason.
pub const CONTRADICTORY: &[&str] = &[
    "contained-resource-bad-id-ignore",
    "aggregation-apart-good4",
];

/// One case's outcome.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case name.
    pub name: String,
    /// `base` or `profile`.
    pub step: String,
    /// The reference validator's verdict.
    pub expected_valid: bool,
    /// Our verdict; `None` when the step is not run.
    pub ours_valid: Option<bool>,
    /// Expressions of the expected errors.
    pub expected_errors: BTreeSet<String>,
    /// Expressions of our errors.
    pub our_errors: BTreeSet<String>,
    /// Our error count.
    pub our_error_count: usize,
    /// The expected error count.
    pub expected_error_count: usize,
    /// Our first few error messages, for the report's list of disagreements.
    pub our_messages: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct CasesReport {
    /// Every case, in file order.
    pub cases: Vec<CaseResult>,
}

/// Runs every case in `dir` (the folder holding `cases.json` and `files/`).
pub fn run(dir: &Path) -> Result<CasesReport> {
    let text = std::fs::read_to_string(dir.join("cases.json")).context("reading cases.json")?;
    let doc: Value = serde_json::from_str(&text).context("parsing cases.json")?;
    let mut report = CasesReport::default();
    let cases = doc["cases"].as_array().context("cases.json has no cases")?;
    let files = dir.join("files");
    // The definitions every case loads (supporting, profiles, the profile validated against).
    let mut all = Definitions::default();
    for case in cases {
        for key in ["supporting", "profiles"] {
            for f in case[key].as_array().into_iter().flatten() {
                let f = f.as_str().unwrap_or_default();
                all.load_path(&files.join(f))
                    .with_context(|| format!("loading {f}"))?;
            }
        }
        if let Some(f) = case["validate_against"].as_str() {
            let sd = anchorgate::validate::definitions::read_resource(&files.join(f))
                .with_context(|| format!("loading {f}"))?;
            all.add(sd);
        }
    }
    let shared = Validator::r4().with_definitions(&all);
    for case in cases {
        report.cases.push(run_case(dir, case, &shared)?);
    }
    Ok(report)
}

fn run_case(dir: &Path, case: &Value, shared: &Validator) -> Result<CaseResult> {
    let text = |k: &str| case[k].as_str().unwrap_or_default().to_owned();
    let errors: Vec<&Value> = case["expected"]["errors"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut result = CaseResult {
        name: text("name"),
        step: text("step"),
        expected_valid: case["expected"]["valid"].as_bool().unwrap_or(false),
        ours_valid: None,
        expected_errors: errors
            .iter()
            .filter_map(|e| e["expression"].as_str())
            .map(str::to_owned)
            .collect(),
        our_errors: BTreeSet::new(),
        our_error_count: 0,
        expected_error_count: errors.len(),
        our_messages: Vec::new(),
    };
    let files = dir.join("files");
    let mut defs = Definitions::default();
    for key in ["supporting", "profiles"] {
        for f in case[key].as_array().into_iter().flatten() {
            let f = f.as_str().unwrap_or_default();
            defs.load_path(&files.join(f))
                .with_context(|| format!("case {}: loading {f}", result.name))?;
        }
    }
    // The HL7 harness leaves `anyExtensionsAllowed` off (unknown extensions are errors there) and
    // reports wrong Coding displays as errors.
    let mut options = ValidateOptions::default()
        .strict_extensions(true)
        .check_displays(true);
    if result.step == "profile" {
        let f = text("validate_against");
        let sd = anchorgate::validate::definitions::read_resource(&files.join(&f))
            .with_context(|| format!("case {}: loading {f}", result.name))?;
        options
            .profiles
            .push(sd["url"].as_str().unwrap_or_default().to_owned());
        defs.add(sd);
    }
    let overlay;
    let validator = if defs.is_empty() {
        shared
    } else {
        overlay = shared.with_definitions(&defs);
        &overlay
    };
    let format = if case["format"] == "xml" {
        Format::Xml
    } else {
        Format::Json
    };
    let bytes = std::fs::read(dir.join("files").join(text("file")))
        .with_context(|| format!("case {}", result.name))?;
    match parse(format, &bytes) {
        Ok(v) => {
            let outcome = validator.validate_with(&v, &options);
            result.ours_valid = Some(is_valid(&outcome));
            for issue in outcome.issues.iter().filter(|i| {
                matches!(
                    i.severity,
                    anchorgate::fhir::Severity::Error | anchorgate::fhir::Severity::Fatal
                )
            }) {
                result.our_error_count += 1;
                result.our_errors.extend(issue.expression.iter().cloned());
                if result.our_messages.len() < 3 {
                    result.our_messages.push(format!(
                        "{}: {}",
                        issue.expression.join(","),
                        issue.diagnostics
                    ));
                }
            }
        }
        Err(_) => {
            result.ours_valid = Some(false);
            result.our_error_count = 1;
        }
    }
    Ok(result)
}

impl CaseResult {
    /// Whether the verdicts agree.
    pub fn agrees(&self) -> bool {
        self.ours_valid == Some(self.expected_valid)
    }

    /// An expected-valid case we call invalid (the contradictory ones excepted).
    pub fn is_false_reject(&self) -> bool {
        self.expected_valid
            && self.ours_valid == Some(false)
            && !CONTRADICTORY.contains(&self.name.as_str())
    }
}

impl CasesReport {
    fn run_cases(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| c.ours_valid.is_some())
    }

    /// Verdict agreement over the cases run, as (agreeing, run).
    pub fn agreement(&self) -> (usize, usize) {
        (
            self.run_cases().filter(|c| c.agrees()).count(),
            self.run_cases().count(),
        )
    }

    /// Verdict agreement over the cases of one step (`base` or `profile`), as (agreeing, run).
    pub fn step_agreement(&self, step: &str) -> (usize, usize) {
        let cases = || self.run_cases().filter(move |c| c.step == step);
        (cases().filter(|c| c.agrees()).count(), cases().count())
    }

    /// The false rejects, by name.
    pub fn false_rejects(&self) -> Vec<&str> {
        self.run_cases()
            .filter(|c| c.is_false_reject())
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The Markdown report, ending with the summary line.
    pub fn to_markdown(&self) -> String {
        let (agree, run) = self.agreement();
        let invalid: Vec<&CaseResult> = self.run_cases().filter(|c| !c.expected_valid).collect();
        let counts = invalid
            .iter()
            .filter(|c| c.our_error_count == c.expected_error_count)
            .count();
        let exprs = invalid
            .iter()
            .filter(|c| !c.expected_errors.is_empty() && c.expected_errors == c.our_errors)
            .count();
        let missed: Vec<String> = self
            .run_cases()
            .filter(|c| !c.expected_valid && c.ours_valid == Some(true))
            .map(|c| format!("{} ({})", c.name, c.step))
            .collect();
        let contradictory: Vec<&str> = self
            .run_cases()
            .filter(|c| {
                c.expected_valid
                    && c.ours_valid == Some(false)
                    && CONTRADICTORY.contains(&c.name.as_str())
            })
            .map(|c| c.name.as_str())
            .collect();
        let not_run = self.cases.len() - run;
        let mut md = String::from("# HL7 validator cases\n\n");
        md.push_str(&format!(
            "- cases: {} ({run} run, {not_run} not run)\n",
            self.cases.len()
        ));
        md.push_str(&format!(
            "- verdict agreement: {agree}/{run} ({:.1}%)\n",
            pct(agree, run)
        ));
        for step in ["base", "profile"] {
            let (a, r) = self.step_agreement(step);
            md.push_str(&format!(
                "  - `{step}` steps: {a}/{r} ({:.1}%)\n",
                pct(a, r)
            ));
        }
        md.push_str(&format!(
            "- error-count agreement on expected-invalid cases: {counts}/{}\n",
            invalid.len()
        ));
        md.push_str(&format!(
            "- error-expression agreement (same set) on expected-invalid cases: {exprs}/{}\n",
            invalid.len()
        ));
        md.push_str(&format!(
            "- false rejects: {} {:?}\n",
            self.false_rejects().len(),
            self.false_rejects()
        ));
        md.push_str(&format!(
            "- rejected but contradictory (see `CONTRADICTORY`): {contradictory:?}\n"
        ));
        md.push_str(&format!(
            "- missed errors ({}): {}\n",
            missed.len(),
            missed.join(", ")
        ));
        md.push_str("\n## Disagreements\n\n");
        for c in self.run_cases().filter(|c| !c.agrees()) {
            md.push_str(&format!(
                "- {} ({}): expected {}, ours {}; {}\n",
                c.name,
                c.step,
                if c.expected_valid { "valid" } else { "invalid" },
                if c.ours_valid == Some(true) {
                    "valid"
                } else {
                    "invalid"
                },
                c.our_messages.join(" | ")
            ));
        }
        md.push_str(&format!(
            "\nValidator cases: {agree}/{run} verdicts agree ({:.1}%), {} false rejects\n",
            pct(agree, run),
            self.false_rejects().len()
        ));
        md
    }
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}
