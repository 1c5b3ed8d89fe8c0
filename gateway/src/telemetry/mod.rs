//! Telemetry: structured JSON logs (no bodies, no PHI, no tokens) and Prometheus metrics.

pub mod metrics;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global log subscriber. Logs go to stderr so stdout stays free for command output;
/// `auto` picks pretty lines when stderr is a terminal (a person reads them) and JSON otherwise (a
/// collector parses them).
pub fn init_logging(cfg: &LogConfig) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_new(&cfg.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(std::io::stderr);
    let json = match cfg.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !terminal,
    };
    // `try_init` fails only when a subscriber is already set (as in tests); keeping the first is right.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
}
