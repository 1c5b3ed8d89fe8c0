//! `anchorgate consent import`: anchor and index the consents already in the upstream.

use std::process::ExitCode;

use anchorgate::config::Overrides;
use clap::{Args, Subcommand};

use crate::common::{
    fail, one_shot_runtime, ConfigFile, DataDir, LedgerKey, UpstreamUrl, EXIT_FAILURE, EXIT_USAGE,
};
use crate::progress::Reporter;

#[derive(Debug, Subcommand)]
pub(crate) enum ConsentCommand {
    /// Anchor and index every Consent already in the upstream (written before the gateway was in
    /// front of it), so that they are enforced. Versions already anchored keep their leaf. Runs on a
    /// stopped gateway's config (it takes the ledger's lock). Prints one JSON line: {"seen",
    /// "indexed", "skipped"}.
    #[command(after_help = crate::help::CONSENT_IMPORT)]
    Import(ConsentImportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ConsentImportArgs {
    #[command(flatten)]
    pub(crate) file: ConfigFile,
    #[command(flatten)]
    pub(crate) upstream: UpstreamUrl,
    #[command(flatten)]
    pub(crate) data: DataDir,
    #[command(flatten)]
    pub(crate) key: LedgerKey,
}

/// Why an import did not finish: the exit code and the message.
type Failure = (u8, String);

pub(crate) fn consent_import(args: ConsentImportArgs) -> ExitCode {
    let overrides = Overrides {
        upstream: args.upstream.upstream,
        data_dir: args.data.data_dir,
        ledger_key_file: args.key.ledger_key_file,
        ..Overrides::default()
    };
    let cfg = match args.file.load("consent import", overrides) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let rt = match one_shot_runtime() {
        Ok(rt) => rt,
        Err(e) => return fail("consent import", EXIT_FAILURE, e),
    };
    match rt.block_on(import(cfg)) {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err((code, msg)) => fail("consent import", code, msg),
    }
}

async fn import(
    cfg: anchorgate::config::Config,
) -> Result<anchorgate::server::consents::ImportReport, Failure> {
    let gw =
        anchorgate::server::state::Gateway::new(cfg).map_err(|e| (EXIT_USAGE, e.to_string()))?;
    let Some(ledger) = gw.ledger.clone() else {
        let msg = "the ledger is disabled (ledger.enabled = false): nothing can be anchored";
        return Err((EXIT_USAGE, msg.to_owned()));
    };
    let progress = Reporter::new("consents");
    let report = anchorgate::server::consents::import(&gw, &ledger, &progress)
        .await
        .map_err(|e| (EXIT_FAILURE, e.to_string()));
    progress.finish();
    ledger.shutdown();
    report
}
