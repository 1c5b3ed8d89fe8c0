//! What several subcommands share: the flag groups each takes, loading the configuration and starting
//! the logs, a one-shot runtime, and the exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anchorgate::config::{self, Config, LogConfig, Overrides};
use clap::Args;

/// Exit code of a runtime failure: the command ran and failed, or its check found a problem.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage or configuration error: bad flags or settings, a missing file or key.
pub(crate) const EXIT_USAGE: u8 = 2;

/// Every flag that overrides a setting: `serve` and `check-config` take them all.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML config file. Relative paths in it are relative to its directory.
    #[arg(long, short, env = config::ENV_CONFIG, value_name = "FILE")]
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
    #[command(flatten)]
    pub(crate) data: DataDir,
    /// Worker threads (0 = one per core).
    #[arg(long, env = config::ENV_WORKER_THREADS)]
    pub(crate) worker_threads: Option<usize>,
    /// Log filter, e.g. info or anchorgate=debug.
    #[arg(long, env = config::ENV_LOG)]
    pub(crate) log: Option<String>,
    /// Log format: auto (pretty on a terminal, JSON otherwise), json or pretty.
    #[arg(long, env = config::ENV_LOG_FORMAT)]
    pub(crate) log_format: Option<String>,
    #[command(flatten)]
    pub(crate) key: LedgerKey,
    /// Development only: sign the ledger with a throw-away key made at start (logged loudly).
    #[arg(long)]
    pub(crate) ephemeral_ledger_key: bool,
    /// What applies when no consent of the patient does: deny (opt-in) or permit (opt-out).
    #[arg(long, env = config::ENV_DEFAULT_POLICY)]
    pub(crate) default_policy: Option<String>,
}

/// `--config`, which every command that reads settings takes. The log settings come from the file
/// or from `ANCHORGATE_LOG`/`ANCHORGATE_LOG_FORMAT`; their flags are hidden outside `serve` so that a
/// one-shot command's help lists only what it is about.
#[derive(Debug, Args)]
pub(crate) struct ConfigFile {
    /// TOML config file. Relative paths in it are relative to its directory.
    #[arg(long, short, env = config::ENV_CONFIG, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[arg(long = "log", env = config::ENV_LOG, hide = true)]
    log: Option<String>,
    #[arg(long = "log-format", env = config::ENV_LOG_FORMAT, hide = true)]
    log_format: Option<String>,
}

/// `--data-dir`.
#[derive(Debug, Args)]
pub(crate) struct DataDir {
    /// Directory of the gateway's state (store, ledger); default anchorgate-data beside the config
    /// file. Relative: to the working directory.
    #[arg(long, env = config::ENV_DATA_DIR, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// `--ledger-key-file`.
#[derive(Debug, Args)]
pub(crate) struct LedgerKey {
    /// The ledger's signing key file, from `anchorgate keygen` (or the key itself in
    /// ANCHORGATE_LEDGER_KEY). Relative: to the working directory.
    #[arg(long, env = config::ENV_LEDGER_KEY_FILE, value_name = "FILE")]
    pub(crate) ledger_key_file: Option<PathBuf>,
}

/// `--upstream`.
#[derive(Debug, Args)]
pub(crate) struct UpstreamUrl {
    /// Upstream FHIR base URL, e.g. http://127.0.0.1:8090/fhir.
    #[arg(long, env = config::ENV_UPSTREAM, value_name = "URL")]
    pub(crate) upstream: Option<String>,
}

impl ServeArgs {
    /// The configuration these flags, the environment and the file describe, validated.
    pub(crate) fn load(self) -> Result<Config, config::ConfigError> {
        let overrides = Overrides {
            upstream: self.upstream,
            listen: self.listen,
            public_base: self.public_base,
            data_dir: self.data.data_dir,
            worker_threads: self.worker_threads,
            log_level: self.log,
            log_format: self.log_format,
            ledger_key_file: self.key.ledger_key_file,
            ephemeral_ledger_key: self.ephemeral_ledger_key,
            default_policy: self.default_policy,
        };
        Config::load(self.config.as_deref(), overrides)
    }
}

impl ConfigFile {
    /// Loads the file with a one-shot command's `overrides`, starts the logs at its level and logs
    /// the paths it resolved; on a bad configuration, says why and answers the exit code.
    pub(crate) fn load(&self, command: &str, overrides: Overrides) -> Result<Config, ExitCode> {
        let overrides = Overrides {
            log_level: self.log.clone(),
            log_format: self.log_format.clone(),
            ..overrides
        };
        match Config::load(self.config.as_deref(), overrides) {
            Ok(cfg) => {
                anchorgate::telemetry::init_logging(&cfg.log);
                cfg.log_paths();
                Ok(cfg)
            }
            Err(e) => Err(fail(command, EXIT_USAGE, e)),
        }
    }
}

/// Starts the logs of a command without a configuration: `ANCHORGATE_LOG` and
/// `ANCHORGATE_LOG_FORMAT` when set (a bad value falls back to the default), else info, auto.
pub(crate) fn init_logging_from_env() {
    let mut cfg = LogConfig::default();
    if let Ok(level) = std::env::var(config::ENV_LOG) {
        cfg.level = level;
    }
    if let Some(format) = std::env::var(config::ENV_LOG_FORMAT)
        .ok()
        .and_then(|f| f.parse().ok())
    {
        cfg.format = format;
    }
    anchorgate::telemetry::init_logging(&cfg);
}

/// A runtime for a one-shot command.
pub(crate) fn one_shot_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Prints `anchorgate <command>: <error>` once, on stderr, and answers `code`.
pub(crate) fn fail(command: &str, code: u8, error: impl std::fmt::Display) -> ExitCode {
    if command.is_empty() {
        eprintln!("anchorgate: {error}");
    } else {
        eprintln!("anchorgate {command}: {error}");
    }
    ExitCode::from(code)
}
