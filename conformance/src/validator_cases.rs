//! The HL7 validator-case runner: our validator's verdicts, error counts and error locations against the
//! HL7 Java validator's expected outcomes (the repository's copy: [`REPO_CASES`]).
//!
//! Both steps run: `base` (the core specification, plus the profiles in the instance's `meta.profile`)
//! and `profile` (also against the StructureDefinition in `validate_against`). Each case's `supporting`
//! and `profiles` files are loaded into an overlay over a shared one holding every case's files: the
//! HL7 harness (`ValidationTests`) caches each case's definitions into one worker context per FHIR
//! version, so its expected outcomes assume what other cases loaded (`profile-choice-2` uses Address
//! profiles that only the `aggregation-*` cases load).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read};
use std::path::Path;

use anchorgate::fhir::parse::parse;
use anchorgate::fhir::Format;
use anchorgate::validate::definitions::Definitions;
use anchorgate::validate::{is_valid, ValidateOptions, Validator};
use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use serde_json::Value;

/// The cases in the repository, from its root: HL7's case folder packed whole by
/// `tests/data/make-subset.py` (see `tests/data/README.md`).
pub const REPO_CASES: &str = "tests/data/fhir-validator-cases.tar.gz";

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

/// A case folder's files (`cases.json`, `files/…`) by their path in it, read from the folder or from a
/// `.tar.gz` of it: the archive is read in memory, nothing is unpacked on disk.
#[derive(Debug, Clone, Default)]
pub struct CaseFiles {
    files: BTreeMap<String, Vec<u8>>,
}

impl CaseFiles {
    /// Reads the folder, or the `.tar.gz` holding it (at its top or under one folder).
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("no HL7 validator cases at {}", path.display()))?;
        let mut files = BTreeMap::new();
        if meta.is_dir() {
            read_dir_into(path, "", &mut files)?;
        } else {
            read_tar_gz_into(path, &mut files)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        // The folder is the one holding `cases.json`; an archive may name it in every member.
        let top = files
            .keys()
            .filter_map(|k| k.strip_suffix("cases.json"))
            .filter(|p| p.is_empty() || p.ends_with('/'))
            .min_by_key(|p| p.len())
            .map(str::to_owned)
            .with_context(|| format!("{} holds no cases.json", path.display()))?;
        let files = files
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(&top).map(|k| (k.to_owned(), v)))
            .collect();
        Ok(Self { files })
    }

    /// One file's bytes, by its path in the folder.
    pub fn get(&self, path: &str) -> Result<&[u8]> {
        self.files
            .get(path)
            .map(Vec::as_slice)
            .with_context(|| format!("{path} is not among the case files"))
    }

    /// One resource of `files/`, parsed: XML when its name says so, else JSON.
    pub fn resource(&self, name: &str) -> Result<Value> {
        let bytes = self.get(&format!("files/{name}"))?;
        let format = if name.to_ascii_lowercase().ends_with(".xml") {
            Format::Xml
        } else {
            Format::Json
        };
        parse(format, bytes).with_context(|| format!("parsing {name}"))
    }

    /// Adds the definitions of one file of `files/` (a definition, or a Bundle of them) to `defs`.
    fn load(&self, defs: &mut Definitions, name: &str) -> Result<()> {
        let resource = self.resource(name)?;
        let rt = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if defs.add(resource) == 0 && rt != "Bundle" {
            bail!("{name} is not a definition ({rt})");
        }
        Ok(())
    }
}

/// Every file under `dir`, keyed by `prefix` and its path below `dir` (`/`-separated).
fn read_dir_into(dir: &Path, prefix: &str, files: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = format!(
            "{prefix}{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        if path.is_dir() {
            read_dir_into(&path, &format!("{name}/"), files)?;
        } else {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.insert(name, bytes);
        }
    }
    Ok(())
}

/// Every regular file of a `.tar.gz`, keyed by its member name.
fn read_tar_gz_into(path: &Path, files: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
    let gz = GzDecoder::new(BufReader::new(std::fs::File::open(path)?));
    let mut archive = tar::Archive::new(gz);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading member {name}"))?;
        files.insert(name, bytes);
    }
    Ok(())
}

/// Runs every case of `path`: the folder holding `cases.json` and `files/`, or a `.tar.gz` of it
/// (such as [`REPO_CASES`]).
pub fn run(path: &Path) -> Result<CasesReport> {
    run_files(&CaseFiles::open(path)?)
}

/// Runs every case of `files`.
pub fn run_files(files: &CaseFiles) -> Result<CasesReport> {
    let doc: Value =
        serde_json::from_slice(files.get("cases.json")?).context("parsing cases.json")?;
    let mut report = CasesReport::default();
    let cases = doc["cases"].as_array().context("cases.json has no cases")?;
    // The definitions every case loads (supporting, profiles, the profile validated against).
    let mut all = Definitions::default();
    for case in cases {
        for key in ["supporting", "profiles"] {
            for f in case[key].as_array().into_iter().flatten() {
                let f = f.as_str().unwrap_or_default();
                files
                    .load(&mut all, f)
                    .with_context(|| format!("loading {f}"))?;
            }
        }
        if let Some(f) = case["validate_against"].as_str() {
            all.add(files.resource(f).with_context(|| format!("loading {f}"))?);
        }
    }
    let shared = Validator::r4().with_definitions(&all);
    for case in cases {
        report.cases.push(run_case(files, case, &shared)?);
    }
    Ok(report)
}

fn run_case(files: &CaseFiles, case: &Value, shared: &Validator) -> Result<CaseResult> {
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
    let mut defs = Definitions::default();
    for key in ["supporting", "profiles"] {
        for f in case[key].as_array().into_iter().flatten() {
            let f = f.as_str().unwrap_or_default();
            files
                .load(&mut defs, f)
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
        let sd = files
            .resource(&f)
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
    let bytes = files
        .get(&format!("files/{}", text("file")))
        .with_context(|| format!("case {}", result.name))?;
    match parse(format, bytes) {
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
