//! The `[ledger]` settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Env var holding the signing key itself (`PRIVATE+KEY+...`), an alternative to `ledger.key_file`.
pub const ENV_LEDGER_KEY: &str = "ANCHORGATE_LEDGER_KEY";

/// Ledger settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerConfig {
    /// Anchor writes. Off, the gateway proxies and validates but proves nothing; it says so at start.
    pub enabled: bool,
    /// Where the store and the tile mirror live; default `<data_dir>/ledger`.
    pub dir: Option<PathBuf>,
    /// The signing key file written by `anchorgate keygen` (mode 0600). The key's name is the log's
    /// origin line.
    pub key_file: Option<PathBuf>,
    /// Generate a throw-away key at start: for development only; checkpoints signed with it cannot be
    /// verified after a restart. Must be asked for explicitly and is logged loudly.
    pub ephemeral_key: bool,
    /// Most entries made durable in one fsync.
    pub batch_max_entries: usize,
    /// How long a batch may wait for more entries after its first, in milliseconds (0: group commit
    /// only, which batches under load without adding latency at low load).
    pub batch_linger_ms: u64,
    /// How often a checkpoint is signed when there are new entries, in milliseconds.
    pub checkpoint_interval_ms: u64,
    /// A cap on the store's size in bytes; reaching it behaves like a full disk.
    pub max_store_bytes: Option<u64>,
    /// Keep the static mirror (`<dir>/log`, c2sp tlog-tiles files) up to date after each signing. The
    /// gateway serves the same tiles from its store (`/ledger/tile/...`), so a deployment that does not
    /// copy or host the files can turn it off: it writes two files per 256 entries (LEDGER.md).
    pub mirror: bool,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
            key_file: None,
            ephemeral_key: false,
            batch_max_entries: 256,
            batch_linger_ms: 0,
            checkpoint_interval_ms: 1000,
            max_store_bytes: None,
            mirror: true,
        }
    }
}

impl LedgerConfig {
    /// Whether a signing key is configured at all (a file, [`ENV_LEDGER_KEY`], or the ephemeral one):
    /// checked before a port is bound, the key itself is read when the ledger opens.
    pub fn key_configured(&self) -> bool {
        self.key_file.is_some() || self.ephemeral_key || std::env::var_os(ENV_LEDGER_KEY).is_some()
    }

    /// Checks the values; the key itself is read when the ledger opens.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1..=65_536).contains(&self.batch_max_entries) {
            return Err(("ledger.batch_max_entries", "must be 1..=65536".into()));
        }
        if self.batch_linger_ms > 250 {
            return Err((
                "ledger.batch_linger_ms",
                "must be at most 250: every write waits for its batch".into(),
            ));
        }
        if self.checkpoint_interval_ms < 10 {
            return Err((
                "ledger.checkpoint_interval_ms",
                "must be at least 10".into(),
            ));
        }
        Ok(())
    }
}
