//! Set-up shared by the ledger benchmarks: a fresh ledger directory with a real signing key, and the
//! runtime the gateway would give it.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;

use anchorgate::ledger::note::NoteSigner;
use anchorgate::ledger::LedgerConfig;

/// A temporary directory holding a signing key, and a ledger config using it (`batch_max_entries`).
pub fn ledger_dir(name: &str, batch_max_entries: usize) -> (PathBuf, LedgerConfig) {
    let dir = std::env::temp_dir().join(format!("anchorgate-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    let signer = NoteSigner::generate("bench.anchorgate/log").unwrap();
    std::fs::write(&key, signer.encode()).unwrap();
    let cfg = LedgerConfig {
        key_file: Some(key),
        batch_max_entries,
        ..LedgerConfig::default()
    };
    (dir, cfg)
}

/// Two worker threads, as on the two-core machine the figures are measured on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
