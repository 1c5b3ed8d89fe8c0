//! `anchorgate ledger verify` and `anchorgate ledger erase`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::common::{usage_error, ConfigArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum LedgerCommand {
    /// Verify a whole log from a URL or a mirror directory: the checkpoint's signature, every entry
    /// well-formed, every tile and entry recomputing to the checkpoint's root, and consistency with the
    /// checkpoint remembered in --state (a fork or rollback fails). Prints one JSON line; exits 0 when
    /// everything verifies, 1 when anything does not, 2 on usage errors.
    Verify(LedgerVerifyArgs),
    /// GDPR erasure: delete the salts of every ledger entry of one resource (its anchors can never be
    /// linked to content again; the tree and proofs stay valid) and record the erasure as a key-event
    /// entry with no identifier. Runs on a stopped gateway's ledger (the same config and key).
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
    pub(crate) config: ConfigArgs,
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
    match verify(source.as_ref(), &key, args.state.as_deref()) {
        Ok(report) => {
            let mut line = serde_json::to_value(&report).unwrap_or_default();
            line["ok"] = true.into();
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", serde_json::json!({"ok": false, "error": e}));
            eprintln!("anchorgate ledger verify: FAILED: {e}");
            ExitCode::from(1)
        }
    }
}

pub(crate) fn ledger_erase(args: LedgerEraseArgs) -> ExitCode {
    let cfg = match args.config.load() {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    if anchorgate::fhir::route::resource_type(&args.rtype).is_none() {
        eprintln!(
            "anchorgate ledger erase: {:?} is not an R4 resource type",
            args.rtype
        );
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("anchorgate ledger erase: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let ledger = anchorgate::ledger::Ledger::open(&cfg.ledger, &cfg.ledger_dir())?;
        let out = ledger.erase(&args.rtype, &args.id).await?;
        ledger.shutdown();
        Ok::<_, anchorgate::ledger::LedgerError>(out)
    });
    match result {
        Ok((erased, event)) => {
            println!(
                "{}",
                serde_json::json!({"erased_leaves": erased, "key_event_leaf": event})
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("anchorgate ledger erase: {e}");
            ExitCode::from(2)
        }
    }
}
