//! What several subcommands share: the configuration flags, a one-shot runtime, usage errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anchorgate::config::{self, Config, Overrides};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// TOML config file.
    #[arg(long, short, env = config::ENV_CONFIG)]
    pub(crate) config: Option<PathBuf>,
    /// Upstream FHIR base URL, e.g. http://127.0.0.1:8090/fhir.
    #[arg(long, env = config::ENV_UPSTREAM)]
    pub(crate) upstream: Option<String>,
    /// Listen address, IP:PORT (default 127.0.0.1:8080).
    #[arg(long, env = config::ENV_LISTEN)]
    pub(crate) listen: Option<String>,
    /// Public FHIR base URL clients use, e.g. https://fhir.example.org/fhir (default: from Host).
    #[arg(long, env = config::ENV_PUBLIC_BASE)]
    public_base: Option<String>,
    /// Directory for the gateway's own state.
    #[arg(long, env = config::ENV_DATA_DIR)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Worker threads (0 = one per core).
    #[arg(long, env = config::ENV_WORKER_THREADS)]
    pub(crate) worker_threads: Option<usize>,
    /// Log filter, e.g. info or anchorgate=debug.
    #[arg(long, env = config::ENV_LOG)]
    pub(crate) log: Option<String>,
    /// Log format: json or pretty.
    #[arg(long, env = config::ENV_LOG_FORMAT)]
    pub(crate) log_format: Option<String>,
    /// The ledger's signing key file (from `anchorgate keygen`).
    #[arg(long, env = config::ENV_LEDGER_KEY_FILE)]
    pub(crate) ledger_key_file: Option<PathBuf>,
    /// Development only: sign the ledger with a throw-away key made at start (logged loudly).
    #[arg(long)]
    pub(crate) ephemeral_ledger_key: bool,
    /// What applies when no consent of the patient does: deny (opt-in) or permit (opt-out).
    #[arg(long, env = config::ENV_DEFAULT_POLICY)]
    pub(crate) default_policy: Option<String>,
}

impl ConfigArgs {
    pub(crate) fn load(self) -> Result<Config, config::ConfigError> {
        let mut cfg = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        cfg.apply_overrides(Overrides {
            upstream: self.upstream,
            listen: self.listen,
            public_base: self.public_base,
            data_dir: self.data_dir,
            worker_threads: self.worker_threads,
            log_level: self.log,
            log_format: self.log_format,
            ledger_key_file: self.ledger_key_file,
            ephemeral_ledger_key: self.ephemeral_ledger_key,
            default_policy: self.default_policy,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// A runtime for a one-shot command.
pub(crate) fn one_shot_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

pub(crate) fn usage_error(e: &config::ConfigError) -> ExitCode {
    eprintln!("anchorgate: {e}");
    ExitCode::from(2)
}
