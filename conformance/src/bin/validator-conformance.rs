//! `validator-conformance`: runs the HL7 validator cases against Anchorgate's validator and prints the report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Runs `cases.json` from an HL7 validator-case folder; exits 1 on any false reject.
#[derive(Debug, Parser)]
struct Args {
    /// The folder holding `cases.json` and `files/`, or a `.tar.gz` of it (default: the repository's
    /// copy, from the repository root).
    #[arg(long, default_value = anchorgate_conformance::validator_cases::REPO_CASES)]
    cases: PathBuf,
    /// Also write the Markdown report here.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let report = match anchorgate_conformance::validator_cases::run(&args.cases) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("validator-conformance: {e:#}");
            return ExitCode::from(2);
        }
    };
    let md = report.to_markdown();
    print!("{md}");
    if let Some(path) = args.report {
        if let Err(e) = std::fs::write(&path, &md) {
            eprintln!(
                "validator-conformance: cannot write {}: {e}",
                path.display()
            );
            return ExitCode::from(2);
        }
    }
    if report.false_rejects().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
