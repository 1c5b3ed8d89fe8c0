//! `rest-conformance`: runs the REST pass-through suite against an upstream and a gateway, prints the report.

use std::path::PathBuf;
use std::process::ExitCode;

use anchorgate_conformance::rest::{self, RestOptions};
use clap::Parser;

/// Runs every REST check against the upstream directly and through the gateway, compares them,
/// optionally loads Synthea Bundles through the gateway; exits 1 if anything differed or leaked.
#[derive(Debug, Parser)]
#[command(name = "rest-conformance", version)]
struct Args {
    /// A bearer token for the gateway (env ANCHORGATE_TOKEN).
    #[arg(long, env = "ANCHORGATE_TOKEN")]
    bearer_token: Option<String>,
    /// The upstream FHIR base, e.g. http://127.0.0.1:8090/fhir
    #[arg(long)]
    upstream: String,
    /// The gateway's FHIR base in front of it, e.g. http://127.0.0.1:8080/fhir
    #[arg(long)]
    gateway: String,
    /// Directory of Synthea transaction Bundles to load through the gateway
    #[arg(long)]
    synthea: Option<PathBuf>,
    /// Also write the Markdown report to this file
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = RestOptions {
        upstream_base: args.upstream,
        gateway_base: args.gateway,
        synthea_dir: args.synthea,
        bearer_token: args.bearer_token,
    };
    let report = match rest::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rest-conformance: {e:#}");
            return ExitCode::from(2);
        }
    };
    let md = report.to_markdown();
    println!("{md}");
    if let Some(path) = &args.report {
        if let Err(e) = std::fs::write(path, &md) {
            eprintln!("rest-conformance: writing {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
