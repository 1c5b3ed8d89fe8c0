//! What every request shares: config, the upstream client, metrics, the concurrency budget.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::consents::Consents;
use super::enforce::Enforcer;
use crate::config::Config;
use crate::ledger::Ledger;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;
use crate::upstream::{Upstream, UpstreamBuildError};
use crate::validate::Validator;

/// Why the shared state cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The upstream client could not be built.
    #[error(transparent)]
    Upstream(#[from] UpstreamBuildError),
    /// The validation definitions or profiles cannot be used.
    #[error("validation: {0}")]
    Validation(String),
    /// The ledger cannot start.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// Identity or policy settings cannot be used.
    #[error("{0}")]
    Policy(String),
    /// The gateway's store cannot be opened.
    #[error("store {path}: {source}")]
    Store {
        /// The database file.
        path: std::path::PathBuf,
        /// Why.
        source: crate::store::StoreError,
    },
}

/// Shared state of a running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// The validated configuration.
    pub config: Config,
    /// The upstream client.
    pub upstream: Upstream,
    /// The validator: embedded definitions plus `validation.definitions`, compiled once at start-up.
    pub validator: Validator,
    /// The ledger writes are anchored in; `None` only when `ledger.enabled = false`.
    pub ledger: Option<Arc<Ledger>>,
    /// The gateway's own database (consent index, decision records).
    pub store: Store,
    /// Consents in force, checked against the ledger.
    pub consents: Consents,
    /// Identity, consent decisions and decision records.
    pub enforcer: Enforcer,
    /// Metrics.
    pub metrics: Metrics,
    /// Requests allowed in flight at once.
    pub limiter: Arc<Semaphore>,
    /// Local path of the FHIR API, without a trailing slash.
    pub fhir_path: String,
    /// The configured public base without a trailing slash, if any.
    pub public_base: Option<String>,
    /// Last readiness probe: when, and whether the upstream answered.
    ready_cache: std::sync::Mutex<Option<(Instant, bool)>>,
}

impl Gateway {
    /// Builds the shared state from a validated config, compiling the validator now so the first write
    /// does not pay for it.
    pub fn new(config: Config) -> Result<Self, StateError> {
        let validator = config
            .validation
            .build_validator()
            .map_err(StateError::Validation)?;
        // The JSON Schema (for `$validate`) is compiled now too, not on the first request.
        if !crate::validate::schema::available() {
            return Err(StateError::Validation(
                "the embedded R4 JSON Schema does not compile".into(),
            ));
        }
        let upstream = Upstream::new(
            config.upstream.clone(),
            &config.upstream_client,
            &config.timeouts,
        )?;
        let ledger = if config.ledger.enabled {
            let ledger = Ledger::open(&config.ledger, &config.ledger_dir())?;
            tracing::info!(origin = ledger.origin(), verifier = %ledger.verifier_key(), size = ledger.size(), "ledger open");
            Some(ledger)
        } else {
            tracing::warn!(
                "ledger disabled (ledger.enabled = false): writes are validated but NOT anchored"
            );
            None
        };
        let store_path = config.data_dir.join("store.sqlite");
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StateError::Store {
            path: store_path.clone(),
            source: crate::store::StoreError::Inconsistent(format!(
                "cannot create the data directory: {e}"
            )),
        })?;
        let store = Store::open(&store_path).map_err(|source| StateError::Store {
            path: store_path,
            source,
        })?;
        let identity = crate::identity::Authenticator::new(
            &config.identity,
            config.public_base.as_ref().map(url::Url::as_str),
        )
        .map_err(|e| StateError::Policy(e.to_string()))?;
        let engine = config
            .policy
            .build_engine()
            .map_err(|e| StateError::Policy(e.to_string()))?;
        let recorder = crate::audit::Recorder::start(store.clone(), ledger.clone())
            .map_err(|e| StateError::Policy(format!("decision recorder: {e}")))?;
        let enforcer = Enforcer::new(identity, engine, recorder, config.enforcement.clone())
            .map_err(StateError::Policy)?;
        Ok(Self {
            enforcer,
            consents: Consents::new(store.clone(), ledger.clone()),
            store,
            ledger,
            limiter: Arc::new(Semaphore::new(config.limits.max_concurrent_requests)),
            fhir_path: config.fhir_path.trim_end_matches('/').to_owned(),
            public_base: config
                .public_base
                .as_ref()
                .map(|u| u.as_str().trim_end_matches('/').to_owned()),
            upstream,
            validator,
            metrics: Metrics::default(),
            ready_cache: std::sync::Mutex::new(None),
            config,
        })
    }

    /// Whether `ip` is a configured trusted proxy.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    }

    /// Whether the upstream is reachable; probes at most once a second however often it is asked.
    pub async fn upstream_ready(&self) -> bool {
        const FRESH: Duration = Duration::from_secs(1);
        if let Ok(guard) = self.ready_cache.lock() {
            if let Some((at, ok)) = *guard {
                if at.elapsed() < FRESH {
                    return ok;
                }
            }
        }
        let ok = self.upstream.ready(Duration::from_secs(2)).await;
        if let Ok(mut guard) = self.ready_cache.lock() {
            *guard = Some((Instant::now(), ok));
        }
        ok
    }
}
