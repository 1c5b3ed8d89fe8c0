//! `anchorgate audit export`: decision records as NDJSON or CSV.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::common::{usage_error, ConfigArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Write the decision records (all, or those matching --filter) to stdout as NDJSON or CSV,
    /// oldest first. Reads the store of the configured data directory; safe while the gateway runs,
    /// though a running gateway stores decisions in batches, so its last 10 ms may not be there yet
    /// (`GET /audit/decisions` waits for them). Exits 0 on success, 2 on a usage error or an
    /// unreadable store.
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
    pub(crate) config: ConfigArgs,
}

pub(crate) fn audit_export(args: AuditExportArgs) -> ExitCode {
    let cfg = match args.config.load() {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    let mut pairs = Vec::new();
    for f in &args.filters {
        match f.split_once('=') {
            Some((k, v)) if !v.is_empty() && k != "after" && k != "_count" => {
                pairs.push((k.to_owned(), v.to_owned()))
            }
            _ => {
                eprintln!("anchorgate audit export: --filter {f:?}: expected NAME=VALUE");
                return ExitCode::from(2);
            }
        }
    }
    let query = match anchorgate::audit::query::decisions(&pairs) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("anchorgate audit export: --filter {e}");
            return ExitCode::from(2);
        }
    };
    let path = cfg.data_dir.join("store.sqlite");
    if !path.exists() {
        eprintln!("anchorgate audit export: no store at {}", path.display());
        return ExitCode::from(2);
    }
    let store = match anchorgate::store::Store::open(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("anchorgate audit export: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout().lock();
    match anchorgate::audit::export::export(
        &store,
        query,
        args.format,
        std::io::BufWriter::new(stdout),
    ) {
        Ok(n) => {
            eprintln!("anchorgate audit export: {n} decision record(s)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("anchorgate audit export: {e}");
            ExitCode::from(2)
        }
    }
}
