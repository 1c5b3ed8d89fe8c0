//! Typed configuration: a TOML file, then `ANCHORGATE_*` env vars and flags, validated before any port is bound.
//!
//! Precedence, lowest to highest: built-in defaults, the TOML file (`--config`), environment variables,
//! command-line flags. Environment variables and flags are merged by `clap` in the binary and applied
//! with [`Config::apply_overrides`], so every override has exactly one name in each place.
//! [`Config::load`] does it all in order: read, resolve relative paths ([`paths`]), override, validate.

mod paths;
mod report;
mod sections;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use url::Url;

pub use paths::{absolute, working_dir};
pub use sections::{
    LimitsConfig, LogConfig, LogFormat, TimeoutsConfig, TlsConfig, UpstreamClientConfig,
    UpstreamFormat,
};

/// Environment variable naming the TOML config file.
pub const ENV_CONFIG: &str = "ANCHORGATE_CONFIG";
/// Environment variable overriding [`Config::upstream`].
pub const ENV_UPSTREAM: &str = "ANCHORGATE_UPSTREAM";
/// Environment variable overriding [`Config::listen`].
pub const ENV_LISTEN: &str = "ANCHORGATE_LISTEN";
/// Environment variable overriding [`Config::public_base`].
pub const ENV_PUBLIC_BASE: &str = "ANCHORGATE_PUBLIC_BASE";
/// Environment variable overriding [`Config::data_dir`].
pub const ENV_DATA_DIR: &str = "ANCHORGATE_DATA_DIR";
/// Environment variable overriding [`Config::worker_threads`].
pub const ENV_WORKER_THREADS: &str = "ANCHORGATE_WORKER_THREADS";
/// Environment variable overriding [`LogConfig::level`] (a `tracing` filter).
pub const ENV_LOG: &str = "ANCHORGATE_LOG";
/// Environment variable overriding [`LogConfig::format`].
pub const ENV_LOG_FORMAT: &str = "ANCHORGATE_LOG_FORMAT";

/// Environment variable overriding [`crate::policy::PolicyConfig::default_policy`] (`deny` or `permit`).
pub const ENV_DEFAULT_POLICY: &str = "ANCHORGATE_DEFAULT_POLICY";

/// Env var naming the ledger's signing key file.
pub const ENV_LEDGER_KEY_FILE: &str = "ANCHORGATE_LEDGER_KEY_FILE";

/// A configuration that cannot be used; the message says which setting and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file named by `--config`.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file named by `--config`.
        path: PathBuf,
        /// The TOML or schema failure, with line and column.
        source: Box<toml::de::Error>,
    },
    /// A setting has a value that cannot work.
    #[error("invalid setting `{setting}`: {reason}")]
    Invalid {
        /// The setting's name as written in the TOML file.
        setting: &'static str,
        /// Why the value is refused.
        reason: String,
    },
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// The whole gateway configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the gateway listens on.
    pub listen: SocketAddr,
    /// The upstream EHR's FHIR base URL, e.g. `http://ehr.internal:8090/fhir`.
    pub upstream: Url,
    /// The public FHIR base URL clients see, e.g. `https://fhir.example.org/fhir`. When unset, it is
    /// derived per request from the `Host` header (and `X-Forwarded-*` from trusted proxies).
    pub public_base: Option<Url>,
    /// Path under which the gateway serves the FHIR API when `public_base` is unset.
    pub fhir_path: String,
    /// Directory for the gateway's own state (store, ledger). Relative: to the config file's directory
    /// (see [`paths`]).
    pub data_dir: PathBuf,
    /// Tokio worker threads; 0 means one per core.
    pub worker_threads: usize,
    /// Peers whose `X-Forwarded-Proto`/`X-Forwarded-Host`/`X-Request-Id` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The format the upstream is spoken to in: `auto` passes the client's negotiation through; `json` or
    /// `xml` makes the gateway send bodies, `Accept` and `_format` in that format and answer every client
    /// in the format it asked for, converting both ways.
    pub upstream_format: UpstreamFormat,
    /// Path prefixes under the FHIR base that are not FHIR REST routes but that the upstream hands out
    /// itself, such as bulk-data status and file URLs. They pass through for GET, HEAD and DELETE only;
    /// any other unknown path answers 404.
    pub passthrough_paths: Vec<String>,
    /// Validation of writes.
    pub validation: crate::validate::enforce::ValidationConfig,
    /// Body and concurrency limits.
    pub limits: LimitsConfig,
    /// Timeouts, in milliseconds.
    pub timeouts: TimeoutsConfig,
    /// Upstream connection settings.
    pub upstream_client: UpstreamClientConfig,
    /// TLS termination; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// Logging.
    pub log: LogConfig,
    /// The Merkle ledger writes are anchored in.
    pub ledger: crate::ledger::LedgerConfig,
    /// Bearer-token identity: trusted issuers, audience, partner registry.
    pub identity: crate::identity::IdentityConfig,
    /// Consent decisions: the default policy and the organisation policies.
    pub policy: crate::policy::PolicyConfig,
    /// How decisions are enforced: denied reads, joins, the compliance scope.
    pub enforcement: crate::server::enforce::EnforcementConfig,
}

/// Values from the environment or the command line that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// See [`Config::upstream`].
    pub upstream: Option<String>,
    /// See [`Config::listen`].
    pub listen: Option<String>,
    /// See [`Config::public_base`].
    pub public_base: Option<String>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::worker_threads`].
    pub worker_threads: Option<usize>,
    /// See [`LogConfig::level`].
    pub log_level: Option<String>,
    /// See [`LogConfig::format`].
    pub log_format: Option<String>,
    /// See [`crate::ledger::LedgerConfig::key_file`].
    pub ledger_key_file: Option<PathBuf>,
    /// See [`crate::ledger::LedgerConfig::ephemeral_key`].
    pub ephemeral_ledger_key: bool,
    /// See [`crate::policy::PolicyConfig::default_policy`].
    pub default_policy: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            // The test upstream's default port; `--upstream` points anywhere else.
            upstream: default_upstream(),
            public_base: None,
            fhir_path: "/fhir".to_owned(),
            data_dir: PathBuf::from("anchorgate-data"),
            worker_threads: 0,
            trusted_proxies: Vec::new(),
            upstream_format: UpstreamFormat::Auto,
            // Where bulk-data export servers commonly put job status and output files.
            passthrough_paths: vec!["bulk-status/".to_owned(), "bulk-files/".to_owned()],
            validation: Default::default(),
            limits: LimitsConfig::default(),
            timeouts: TimeoutsConfig::default(),
            upstream_client: UpstreamClientConfig::default(),
            tls: None,
            log: LogConfig::default(),
            ledger: Default::default(),
            identity: Default::default(),
            policy: Default::default(),
            enforcement: Default::default(),
        }
    }
}

fn default_upstream() -> Url {
    // A literal URL that is known to parse; covered by `defaults_are_valid`.
    Url::parse("http://127.0.0.1:8090/fhir").unwrap_or_else(|_| unreachable!())
}

impl Config {
    /// Loads the configuration a command runs with: the file (or the defaults), every relative path
    /// made absolute by the one rule of [`paths`], then `overrides`, then [`Self::validate`].
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(path) => Self::from_file(path)?,
            None => {
                let mut cfg = Self::default();
                cfg.resolve_paths(&working_dir()?);
                cfg
            }
        };
        cfg.apply_overrides(overrides)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads the TOML file at `path`; relative paths in it (and the default `data_dir`) are made
    /// relative to the file's directory.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Self::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let file = absolute("--config", path)?;
        let dir = file.parent().unwrap_or(Path::new("/"));
        cfg.resolve_paths(dir);
        Ok(cfg)
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies environment and command-line overrides, parsing each as its TOML counterpart would be.
    pub fn apply_overrides(&mut self, o: Overrides) -> Result<(), ConfigError> {
        if let Some(v) = o.upstream {
            self.upstream =
                Url::parse(&v).map_err(|e| invalid("upstream", format!("{v:?}: {e}")))?;
        }
        if let Some(v) = o.listen {
            self.listen = v
                .parse()
                .map_err(|e| invalid("listen", format!("{v:?}: {e} (expected IP:PORT)")))?;
        }
        if let Some(v) = o.public_base {
            let url = Url::parse(&v).map_err(|e| invalid("public_base", format!("{v:?}: {e}")))?;
            self.public_base = Some(url);
        }
        // Typed in a shell, so relative to the working directory, whatever the file's rule.
        if let Some(v) = o.data_dir {
            self.data_dir = absolute("data_dir", &v)?;
        }
        if let Some(v) = o.ledger_key_file {
            self.ledger.key_file = Some(absolute("ledger.key_file", &v)?);
        }
        if o.ephemeral_ledger_key {
            self.ledger.ephemeral_key = true;
        }
        if let Some(v) = o.default_policy {
            self.policy.default_policy = v
                .parse()
                .map_err(|e: String| invalid("policy.default_policy", e))?;
        }
        if let Some(v) = o.worker_threads {
            self.worker_threads = v;
        }
        if let Some(v) = o.log_level {
            self.log.level = v;
        }
        if let Some(v) = o.log_format {
            self.log.format = v.parse().map_err(|e: String| invalid("log.format", e))?;
        }
        Ok(())
    }

    /// The ledger's directory.
    pub fn ledger_dir(&self) -> PathBuf {
        self.ledger
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("ledger"))
    }

    /// Checks every setting; runs before anything binds a port or touches the disk.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_base_url("upstream", &self.upstream)?;
        if let Some(public) = &self.public_base {
            check_base_url("public_base", public)?;
        }
        if !self.fhir_path.starts_with('/') || self.fhir_path.contains(['?', '#']) {
            return Err(invalid(
                "fhir_path",
                "must be an absolute path such as /fhir",
            ));
        }
        for p in &self.passthrough_paths {
            if p.is_empty()
                || p.starts_with(['/', '$', '_'])
                || p.starts_with(|c: char| c.is_ascii_uppercase())
            {
                return Err(invalid(
                    "passthrough_paths",
                    format!("{p:?}: must be a relative path that cannot be a FHIR route (lowercase, no leading / $ _)"),
                ));
            }
        }
        for t in self.validation.per_type.keys() {
            if crate::fhir::route::resource_type(t).is_none() {
                return Err(invalid(
                    "validation.per_type",
                    format!("{t:?} is not an R4 resource type"),
                ));
            }
        }
        for t in self.validation.profiles.keys() {
            if crate::fhir::route::resource_type(t).is_none() {
                return Err(invalid(
                    "validation.profiles",
                    format!("{t:?} is not an R4 resource type"),
                ));
            }
        }
        // Loads `validation.definitions` and checks `validation.profiles` against them: a bad path or an
        // unknown profile stops the gateway before it binds, not at the first write.
        self.validation
            .build_validator()
            .map_err(|e| invalid("validation", e))?;
        if self.limits.max_request_body == 0 || self.limits.max_response_body == 0 {
            return Err(invalid("limits", "body limits must be above zero"));
        }
        let l = &self.limits;
        if l.max_nodes == 0 || l.max_xml_attributes == 0 || l.max_bundle_entries == 0 {
            return Err(invalid(
                "limits",
                "max_nodes, max_xml_attributes and max_bundle_entries must be above zero",
            ));
        }
        if self.limits.max_concurrent_requests == 0 {
            return Err(invalid(
                "limits.max_concurrent_requests",
                "must be above zero",
            ));
        }
        let t = &self.timeouts;
        for (name, v) in [
            ("timeouts.client_header_ms", t.client_header_ms),
            ("timeouts.client_body_ms", t.client_body_ms),
            ("timeouts.upstream_connect_ms", t.upstream_connect_ms),
            ("timeouts.upstream_response_ms", t.upstream_response_ms),
            ("timeouts.upstream_body_ms", t.upstream_body_ms),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be above zero"));
            }
        }
        if let Some(tls) = &self.tls {
            for (name, path) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
                if !path.is_file() {
                    return Err(invalid(
                        name,
                        format!("{} is not a readable file", path.display()),
                    ));
                }
            }
        }
        if let Some(ca) = &self.upstream_client.ca_file {
            if !ca.is_file() {
                return Err(invalid(
                    "upstream_client.ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        self.ledger
            .check()
            .map_err(|(setting, reason)| invalid(setting, reason))?;
        self.identity.check()?;
        self.enforcement
            .validate()
            .map_err(|reason| invalid("enforcement", reason))?;
        // Loads and validates the organisation policies: a bad policy file stops the gateway here.
        self.policy
            .load_org()
            .map_err(|e| invalid("policy.dir", e.to_string()))?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!("{:?} is not a valid filter", self.log.level),
            ));
        }
        Ok(())
    }
}

fn check_base_url(setting: &'static str, url: &Url) -> Result<(), ConfigError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            setting,
            format!("{url}: scheme must be http or https"),
        ));
    }
    if url.host_str().is_none() {
        return Err(invalid(setting, format!("{url}: needs a host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            setting,
            format!("{url}: a base URL has no query or fragment"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(setting, "credentials do not belong in the URL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
