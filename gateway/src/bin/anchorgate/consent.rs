//! `anchorgate consent import`: anchor and index the consents already in the upstream.

use std::process::ExitCode;

use clap::Subcommand;

use crate::common::{one_shot_runtime, usage_error, ConfigArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum ConsentCommand {
    /// Anchor and index every Consent already in the upstream (written before the gateway was in
    /// front of it), so that they are enforced. Versions already anchored keep their leaf. Runs on a
    /// stopped gateway's config (it takes the ledger's lock). Prints one JSON line; exits 0 on
    /// success, 2 on any failure.
    Import(ConfigArgs),
}

pub(crate) fn consent_import(args: ConfigArgs) -> ExitCode {
    let cfg = match args.load() {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    let result = one_shot_runtime().and_then(|rt| {
        rt.block_on(async {
            let gw = anchorgate::server::state::Gateway::new(cfg).map_err(|e| e.to_string())?;
            let Some(ledger) = gw.ledger.clone() else {
                return Err(
                    "the ledger is disabled (ledger.enabled = false): nothing can be anchored"
                        .to_owned(),
                );
            };
            let report = anchorgate::server::consents::import(&gw, &ledger)
                .await
                .map_err(|e| e.to_string());
            ledger.shutdown();
            report
        })
    });
    match result {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("anchorgate consent import: {e}");
            ExitCode::from(2)
        }
    }
}
