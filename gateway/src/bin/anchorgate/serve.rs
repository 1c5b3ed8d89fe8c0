//! `anchorgate serve`: run the gateway until SIGTERM or Ctrl-C.
//!
//! Start-up order matters to an operator: every configuration mistake (exit 2) is found before the
//! port is bound, and the port is bound (exit 1 if taken) before the ledger is opened, so a failed
//! start never appends to the ledger.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anchorgate::config::Config;
use anchorgate::server::{self, Gateway, ServeError};
use tokio::net::TcpListener;

use crate::common::{fail, ServeArgs, EXIT_FAILURE, EXIT_USAGE};

/// How long the start-up probe of the upstream waits for an answer.
const UPSTREAM_PROBE: Duration = Duration::from_secs(2);

pub(crate) fn serve(args: ServeArgs) -> ExitCode {
    let cfg = match args.load() {
        Ok(cfg) => cfg,
        Err(e) => return fail("serve", EXIT_USAGE, e),
    };
    anchorgate::telemetry::init_logging(&cfg.log);
    install_panic_hook();
    if cfg.ledger.enabled && !cfg.ledger.key_configured() {
        return fail("serve", EXIT_USAGE, anchorgate::ledger::LedgerError::NoKey);
    }
    cfg.log_paths();
    for warning in cfg.warnings() {
        tracing::warn!("{warning}");
    }
    if let Err(e) = std::fs::create_dir_all(&cfg.data_dir) {
        let msg = format!("cannot create data_dir {}: {e}", cfg.data_dir.display());
        return fail("serve", EXIT_USAGE, msg);
    }
    let rt = match runtime(cfg.worker_threads) {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                "serve",
                EXIT_FAILURE,
                format!("cannot start the runtime: {e}"),
            )
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        // What the operator must fix before the gateway can start (a bad key, a store that contradicts
        // its checkpoints) is a configuration error; a port in use is a runtime failure.
        Err(e @ ServeError::State(_)) => fail("serve", EXIT_USAGE, e),
        Err(e) => fail("serve", EXIT_FAILURE, e),
    }
}

/// Binds, opens the ledger and the rest, serves until a signal, then drains and signs.
async fn run(cfg: Config) -> Result<(), ServeError> {
    let addr = cfg.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let gw = Arc::new(Gateway::new(cfg)?);
    tokio::spawn(probe_upstream(gw.clone()));
    let served = server::serve_on(listener, gw.clone(), shutdown_signal()).await;
    // Drained: store the last requests' decisions, then sign what they anchored.
    let grace = gw.config.timeouts.shutdown_grace();
    if let Err(e) = gw.enforcer.recorder.flush(grace).await {
        tracing::error!(error = %e, "the last decision records could NOT be written");
    }
    if let Some(ledger) = &gw.ledger {
        ledger.shutdown();
    }
    served
}

/// Warns once, at start, when the upstream does not answer `GET [base]/metadata`: the gateway still
/// starts (the EHR may come up later; `/readyz` keeps saying so), but the operator hears of it now
/// rather than from the first 502.
async fn probe_upstream(gw: Arc<Gateway>) {
    if !gw.upstream.ready(UPSTREAM_PROBE).await {
        let base = gw.upstream.base().as_str().trim_end_matches('/');
        tracing::warn!(
            upstream = %base,
            "the upstream does not answer GET {base}/metadata within {}s: FHIR requests will answer 502 or 504 until it does (check --upstream / ANCHORGATE_UPSTREAM)",
            UPSTREAM_PROBE.as_secs()
        );
    }
}

/// One worker thread is best served by the current-thread scheduler: no work-stealing queues and no
/// cross-thread wake-ups, which measurably lowers per-request CPU (tests/load/RESULTS.md).
fn runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut rt = if worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    rt.enable_all();
    if worker_threads > 1 {
        rt.worker_threads(worker_threads);
    }
    rt.build()
}

/// A panic's message can quote the data being handled (a resource, a header); log where it happened,
/// never what it said. Panics in request handlers become 500 OperationOutcomes (server/stack.rs).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        tracing::error!(
            location = location.as_deref().unwrap_or("unknown"),
            "panic caught"
        );
    }));
}

/// Completes on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
