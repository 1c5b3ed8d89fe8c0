//! `anchorgate ledger verify` and `anchorgate ledger erase`.

use std::path::PathBuf;
use std::process::ExitCode;

use anchorgate::config::Overrides;
use anchorgate::ledger::LedgerError;
use clap::{Args, Subcommand};

use crate::common::{
    fail, one_shot_runtime, ConfigFile, DataDir, LedgerKey, EXIT_FAILURE, EXIT_USAGE,
};
use crate::progress::Reporter;

#[derive(Debug, Subcommand)]
pub(crate) enum LedgerCommand {
    /// Verify a whole log from a URL or a mirror directory: the checkpoint's signature, every entry
    /// well-formed, every tile and entry recomputing to the checkpoint's root, and consistency with the
    /// checkpoint remembered in --state (a fork or rollback fails). Prints one JSON line; exits 0 when
    /// everything verifies, 1 when anything does not, 2 on usage errors.
    #[command(after_help = crate::help::LEDGER_VERIFY)]
    Verify(LedgerVerifyArgs),
    /// GDPR erasure: delete the salts of every ledger entry of one resource (its anchors can never be
    /// linked to content again; the tree and proofs stay valid) and record the erasure as a key-event
    /// entry with no identifier. Runs on a stopped gateway's ledger (the same config and key). Prints
    /// one JSON line: {"erased_leaves", "key_event_leaf"}.
    #[command(after_help = crate::help::LEDGER_ERASE)]
    Erase(LedgerEraseArgs),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "source")]
pub(crate) struct LedgerSource {
    /// The log's URL prefix, e.g. https://gw.example.org/ledger.
    #[arg(long, group = "source")]
    pub(crate) url: Option<String>,
    /// A mirror directory holding `checkpoint` and `tile/` (e.g. <data_dir>/ledger/log).
    #[arg(long, group = "source")]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct LedgerVerifyArgs {
    #[command(flatten)]
    pub(crate) source: LedgerSource,
    /// The log's verifier key (name+keyid+base64), as `anchorgate keygen` printed it.
    #[arg(long)]
    pub(crate) key: String,
    /// A file remembering the last verified checkpoint; created if missing, updated on success.
    #[arg(long)]
    pub(crate) state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct LedgerEraseArgs {
    /// The resource type.
    #[arg(long = "type")]
    pub(crate) rtype: String,
    /// The resource id.
    #[arg(long)]
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) file: ConfigFile,
    #[command(flatten)]
    pub(crate) data: DataDir,
    #[command(flatten)]
    pub(crate) key: LedgerKey,
}

pub(crate) fn ledger_verify(args: &LedgerVerifyArgs) -> ExitCode {
    use anchorgate::ledger::note::NoteVerifier;
    use anchorgate::ledger::verify::{verify, DirSource, HttpSource, LogSource};
    let key = match NoteVerifier::parse(&args.key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("anchorgate ledger verify: --key: {e}");
            return ExitCode::from(2);
        }
    };
    let source: Box<dyn LogSource> = match (&args.source.url, &args.source.dir) {
        (Some(url), _) => match HttpSource::new(url) {
            Ok(s) => Box::new(s),
            Err(e) => {
                eprintln!("anchorgate ledger verify: {e}");
                return ExitCode::from(2);
            }
        },
        (None, Some(dir)) => Box::new(DirSource { root: dir.clone() }),
        (None, None) => return ExitCode::from(2),
    };
    let progress = Reporter::new("log entries");
    let result = verify(source.as_ref(), &key, args.state.as_deref(), &progress);
    progress.finish();
    match result {
        Ok(report) => {
            let mut line = serde_json::to_value(&report).unwrap_or_default();
            line["ok"] = true.into();
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", serde_json::json!({"ok": false, "error": e}));
            fail("ledger verify", EXIT_FAILURE, format!("FAILED: {e}"))
        }
    }
}

pub(crate) fn ledger_erase(args: LedgerEraseArgs) -> ExitCode {
    let overrides = Overrides {
        data_dir: args.data.data_dir,
        ledger_key_file: args.key.ledger_key_file,
        ..Overrides::default()
    };
    let cfg = match args.file.load("ledger erase", overrides) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    if anchorgate::fhir::route::resource_type(&args.rtype).is_none() {
        let msg = format!("{:?} is not an R4 resource type", args.rtype);
        return fail("ledger erase", EXIT_USAGE, msg);
    }
    let rt = match one_shot_runtime() {
        Ok(rt) => rt,
        Err(e) => return fail("ledger erase", EXIT_FAILURE, e),
    };
    let result = rt.block_on(async {
        let ledger = anchorgate::ledger::Ledger::open(&cfg.ledger, &cfg.ledger_dir())?;
        let out = ledger.erase(&args.rtype, &args.id).await;
        ledger.shutdown();
        out
    });
    match result {
        Ok((erased, event)) => {
            println!(
                "{}",
                serde_json::json!({"erased_leaves": erased, "key_event_leaf": event})
            );
            ExitCode::SUCCESS
        }
        // The store failing midway is a runtime failure; everything else (nothing to erase, the
        // ledger in use, a wrong key or store) is for the operator to fix.
        Err(e @ (LedgerError::Io(_) | LedgerError::Append(_))) => {
            fail("ledger erase", EXIT_FAILURE, e)
        }
        Err(e) => fail("ledger erase", EXIT_USAGE, e),
    }
}
