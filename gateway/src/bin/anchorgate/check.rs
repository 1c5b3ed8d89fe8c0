//! `anchorgate check-config`: the effective configuration as TOML, then its warnings as comments.

use std::process::ExitCode;

use crate::common::{fail, ServeArgs, EXIT_FAILURE, EXIT_USAGE};

pub(crate) fn check_config(args: ServeArgs) -> ExitCode {
    let source = match &args.config {
        Some(path) => format!("{} + environment + flags", path.display()),
        None => "defaults + environment + flags (no config file)".to_owned(),
    };
    let cfg = match args.load() {
        Ok(cfg) => cfg,
        Err(e) => return fail("check-config", EXIT_USAGE, e),
    };
    anchorgate::telemetry::init_logging(&cfg.log);
    let text = match cfg.to_toml() {
        Ok(text) => text,
        Err(e) => return fail("check-config", EXIT_FAILURE, format!("cannot print: {e}")),
    };
    println!("# anchorgate check-config: the effective configuration, from {source}");
    println!("# partner registry: {}", cfg.partner_registry_source());
    println!("# organisation policies: {}", cfg.policy_source());
    println!("# ledger directory: {}", cfg.ledger_dir().display());
    println!();
    print!("{text}");
    let warnings = cfg.warnings();
    if !warnings.is_empty() {
        println!();
    }
    for w in warnings {
        println!("# warning: {w}");
    }
    ExitCode::SUCCESS
}
