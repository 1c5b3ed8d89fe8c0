//! Ingress: the listener, TLS termination, HTTP/1.1 and HTTP/2 connections, and graceful shutdown.

pub mod admin;
pub mod anchor;
pub mod audit_api;
pub mod bridge;
pub mod consents;
pub mod enforce;
pub mod ledger_api;
pub mod patch;
pub mod pipeline;
pub mod public_base;
pub mod readback;
pub mod stack;
pub mod state;
pub mod tls;
pub mod validate_op;
pub mod verify_op;
pub mod write_authz;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use state::Gateway;

/// Facts about the client connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The peer's address (a proxy's, when behind one).
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS material could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// The shared state (upstream client, validator) could not be built.
    #[error(transparent)]
    State(#[from] state::StateError),
}

/// Binds the configured address and serves until `shutdown` completes, then drains.
pub async fn serve(gw: Arc<Gateway>, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let addr = gw.config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_on(listener, gw, shutdown).await
}

/// Serves on an already-bound listener until `shutdown` completes, then stops accepting and waits up
/// to the configured grace period for in-flight requests.
pub async fn serve_on(
    listener: TcpListener,
    gw: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let tls = match &gw.config.tls {
        Some(t) => Some(TlsAcceptor::from(
            tls::server_config(&t.cert, &t.key).map_err(ServeError::Tls)?,
        )),
        None => None,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(gw.config.timeouts.client_header())
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(gw.config.limits.max_h2_streams);
    let graceful = GracefulShutdown::new();
    let local = listener.local_addr().unwrap_or(gw.config.listen);
    tracing::info!(listen = %local, upstream = %gw.upstream.base(), tls = tls.is_some(), "anchorgate serving");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = ConnInfo { peer, tls: tls.is_some() };
                let svc = TowerToHyperService::new(stack::service(gw.clone(), conn));
                match &tls {
                    None => {
                        let fut = graceful.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).into_owned());
                        tokio::spawn(async move {
                            if let Err(e) = fut.await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let builder = builder.clone();
                        let watcher = graceful.watcher();
                        let handshake_timeout = gw.config.timeouts.client_header();
                        tokio::spawn(async move {
                            let tls_stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), svc).into_owned();
                            if let Err(e) = watcher.watch(conn).await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    let grace = gw.config.timeouts.shutdown_grace();
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over; closing remaining connections"
        );
    }
    Ok(())
}
