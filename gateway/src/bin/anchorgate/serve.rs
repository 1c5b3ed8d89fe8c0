//! `anchorgate serve`: run the gateway until SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use anchorgate::config::Config;
use anchorgate::server::{self, Gateway};

pub(crate) fn serve(cfg: Config) -> ExitCode {
    anchorgate::telemetry::init_logging(&cfg.log);
    // A panic's message can quote the data being handled (a resource, a header); log where it happened,
    // never what it said. Panics in request handlers become 500 OperationOutcomes (server/stack.rs).
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        tracing::error!(
            location = location.as_deref().unwrap_or("unknown"),
            "panic caught"
        );
    }));
    if let Err(e) = std::fs::create_dir_all(&cfg.data_dir) {
        eprintln!(
            "anchorgate: cannot create data_dir {}: {e}",
            cfg.data_dir.display()
        );
        return ExitCode::from(2);
    }
    // One worker thread is best served by the current-thread scheduler: no work-stealing queues and
    // no cross-thread wake-ups, which measurably lowers per-request CPU (tests/load/RESULTS.md).
    let mut rt = if cfg.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    rt.enable_all();
    if cfg.worker_threads > 1 {
        rt.worker_threads(cfg.worker_threads);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("anchorgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let gw = Arc::new(Gateway::new(cfg).map_err(server::ServeError::from)?);
        let served = server::serve(gw.clone(), shutdown_signal()).await;
        // Drained: store the last requests' decisions, then sign what they anchored.
        let grace = gw.config.timeouts.shutdown_grace();
        if let Err(e) = gw.enforcer.recorder.flush(grace).await {
            tracing::error!(error = %e, "the last decision records could NOT be written");
        }
        if let Some(ledger) = &gw.ledger {
            ledger.shutdown();
        }
        served
    });
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot serve");
            eprintln!("anchorgate: {e}");
            // What the operator must fix before the gateway can start (no key, a store that contradicts
            // its checkpoints) is a usage error, like a bad config; a lost port is a runtime failure.
            match e {
                server::ServeError::State(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
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
