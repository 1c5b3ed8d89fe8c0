//! `anchorgate validate`: FHIR resource files against base R4 and profiles.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// A profile every file must conform to: a canonical URL (embedded or loaded), or a file holding a
    /// StructureDefinition. Repeatable.
    #[arg(long, value_name = "URL-or-FILE")]
    pub(crate) profile: Vec<String>,
    /// Load definitions for this run: a StructureDefinition, ValueSet, CodeSystem or Bundle of them
    /// (JSON or XML), or a directory of such files. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) load: Vec<PathBuf>,
    /// Judge as strictly as the HL7 validator's defaults: unknown extensions and wrong Coding displays
    /// are errors (the gateway's `validation.strict_extensions` and `validation.check_displays`).
    #[arg(long)]
    pub(crate) strict: bool,
    /// Resource files to validate.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
}

/// The validator for a `validate` run (the embedded one, or an overlay with `--load` and file
/// `--profile`s) and the profile URLs to check; a usage error message otherwise.
pub(crate) fn validation_setup(
    args: &ValidateArgs,
) -> Result<(anchorgate::validate::Validator, Vec<String>), String> {
    use anchorgate::validate::definitions::{read_resource, Definitions};
    use anchorgate::validate::Validator;

    let mut defs = Definitions::default();
    for path in &args.load {
        defs.load_path(path).map_err(|e| e.to_string())?;
    }
    let mut urls = Vec::new();
    for p in &args.profile {
        let path = std::path::Path::new(p);
        if !p.contains("://") && !p.starts_with("urn:") && path.exists() {
            let sd = read_resource(path).map_err(|e| e.to_string())?;
            let url = sd
                .get("url")
                .and_then(|u| u.as_str())
                .filter(|_| sd["resourceType"] == "StructureDefinition")
                .ok_or_else(|| format!("{p} is not a StructureDefinition with a url"))?
                .to_owned();
            defs.add(sd);
            urls.push(url);
        } else {
            urls.push(p.clone());
        }
    }
    let validator = Validator::r4().with_definitions(&defs);
    for url in &urls {
        if let Some(why) = validator.profile_problem(url) {
            return Err(format!("profile {url} cannot be used: {why}"));
        }
        if !validator.knows_profile(url) {
            return Err(format!("unknown profile {url}"));
        }
    }
    Ok((validator, urls))
}

/// `anchorgate validate`: every file is read (and every definition loaded) before any is validated, so
/// an unreadable one is a usage error (exit 2) with no partial output.
pub(crate) fn validate_files(args: &ValidateArgs) -> ExitCode {
    use anchorgate::fhir::{Format, Issue, IssueType, OperationOutcome, Severity};
    use anchorgate::validate::{is_valid, ValidateOptions};

    let files = &args.files;
    let (validator, profiles) = match validation_setup(args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("anchorgate: {e}");
            return ExitCode::from(2);
        }
    };
    let options = ValidateOptions::with_profiles(profiles)
        .json_schema(true)
        .strict_extensions(args.strict)
        .check_displays(args.strict);
    let mut bodies = Vec::with_capacity(files.len());
    for path in files {
        match std::fs::read(path) {
            Ok(b) => bodies.push(b),
            Err(e) => {
                eprintln!("anchorgate: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let mut all_valid = true;
    for (path, body) in files.iter().zip(&bodies) {
        let format = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
        {
            Format::Xml
        } else {
            Format::Json
        };
        let mut outcome = match anchorgate::fhir::parse::parse(format, body) {
            Ok(resource) => validator.validate_with(&resource, &options),
            Err(e) => OperationOutcome::single(Issue::error(IssueType::Structure, e.to_string())),
        };
        let valid = is_valid(&outcome);
        // An OperationOutcome needs at least one issue.
        if outcome.issues.is_empty() {
            outcome.issues.push(Issue {
                severity: Severity::Information,
                code: IssueType::Informational,
                diagnostics: "no issues found".into(),
                expression: Vec::new(),
            });
        }
        all_valid &= valid;
        let line = serde_json::json!({
            "file": path.display().to_string(),
            "valid": valid,
            "outcome": outcome.to_json(),
        });
        println!("{line}");
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
