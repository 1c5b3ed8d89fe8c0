//! `anchorgate audit export`: decision records as NDJSON or CSV.

use std::process::ExitCode;

use anchorgate::config::Overrides;
use clap::{Args, Subcommand};

use crate::common::{fail, ConfigFile, DataDir, EXIT_FAILURE, EXIT_USAGE};
use crate::progress::Reporter;

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Write the decision records (all, or those matching --filter) to stdout as NDJSON or CSV,
    /// oldest first. Reads the store (store.sqlite) of the data directory; safe while the gateway
    /// runs, though a running gateway stores decisions in batches, so its last 10 ms may not be there
    /// yet (`GET /audit/decisions` waits for them). The count goes to stderr.
    #[command(after_help = crate::help::AUDIT_EXPORT)]
    Export(AuditExportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AuditExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "ndjson")]
    pub(crate) format: anchorgate::audit::export::Format,
    /// A filter as `name=value`, repeatable: patient, actor, organization, outcome, purpose,
    /// break_glass, from, to (the parameters of GET /audit/decisions).
    #[arg(long = "filter", value_name = "NAME=VALUE")]
    pub(crate) filters: Vec<String>,
    #[command(flatten)]
    pub(crate) file: ConfigFile,
    #[command(flatten)]
    pub(crate) data: DataDir,
}

pub(crate) fn audit_export(args: AuditExportArgs) -> ExitCode {
    const CMD: &str = "audit export";
    let overrides = Overrides {
        data_dir: args.data.data_dir,
        ..Overrides::default()
    };
    let cfg = match args.file.load(CMD, overrides) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let mut pairs = Vec::new();
    for f in &args.filters {
        match f.split_once('=') {
            Some((k, v)) if !v.is_empty() && k != "after" && k != "_count" => {
                pairs.push((k.to_owned(), v.to_owned()))
            }
            _ => {
                return fail(
                    CMD,
                    EXIT_USAGE,
                    format!("--filter {f:?}: expected NAME=VALUE"),
                )
            }
        }
    }
    let query = match anchorgate::audit::query::decisions(&pairs) {
        Ok(q) => q,
        Err(e) => return fail(CMD, EXIT_USAGE, format!("--filter {e}")),
    };
    let path = cfg.data_dir.join("store.sqlite");
    if !path.exists() {
        let msg = format!(
            "no store at {} (data_dir {}: set --data-dir or data_dir in the config file)",
            path.display(),
            cfg.data_dir.display()
        );
        return fail(CMD, EXIT_USAGE, msg);
    }
    let store = match anchorgate::store::Store::open(&path) {
        Ok(s) => s,
        Err(e) => return fail(CMD, EXIT_USAGE, format!("{}: {e}", path.display())),
    };
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    let progress = Reporter::new("decision records");
    let result = anchorgate::audit::export::export(&store, query, args.format, out, &progress);
    progress.finish();
    match result {
        Ok(n) => {
            tracing::info!(records = n, "exported {n} decision record(s)");
            ExitCode::SUCCESS
        }
        Err(e) => fail(CMD, EXIT_FAILURE, e),
    }
}
