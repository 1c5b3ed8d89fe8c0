//! The gateway's own embedded database (`<data_dir>/store.sqlite`): the consent index and the decision records.
//!
//! The ledger's database holds only what the log needs (entries, tiles, salts, checkpoints); what the
//! gateway derives from traffic lives here, so that a compliance query never contends with the
//! sequencer's group commits, and so that this file can be rebuilt (`anchorgate consent import`)
//! without touching the log. Everything kept here that a decision depends on is checked against the
//! ledger before use, so tampering with this file can hide nothing: it can only make the gateway
//! ignore a consent, and that raises an alert.

pub mod consents;
pub mod decisions;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// Bumped when the schema changes incompatibly.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- The latest anchored version of every Consent written through the gateway (or imported).
CREATE TABLE IF NOT EXISTS consents (
    id       TEXT PRIMARY KEY,
    patient  TEXT NOT NULL,
    version  TEXT,
    status   TEXT NOT NULL,
    leaf     INTEGER NOT NULL,
    body     BLOB NOT NULL,
    recorded INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS consents_by_patient ON consents (patient);
-- One row per policy decision; `record` is the JSON decision record, `leaf` its ledger entry.
CREATE TABLE IF NOT EXISTS decisions (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    time         INTEGER NOT NULL,
    principal    TEXT NOT NULL,
    organization TEXT,
    purpose      TEXT,
    outcome      TEXT NOT NULL,
    break_glass  INTEGER NOT NULL,
    interaction  TEXT NOT NULL,
    rtype        TEXT,
    leaf         INTEGER,
    record       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_time ON decisions (time);
-- Patients a decision concerned (a search may touch several).
CREATE TABLE IF NOT EXISTS decision_patients (
    seq     INTEGER NOT NULL REFERENCES decisions (seq),
    patient TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decision_patients_by_patient ON decision_patients (patient, seq);
";

/// A store failure; every one is reported, none is papered over.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("store database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The file is from another schema version or is damaged.
    #[error("store database: {0}")]
    Inconsistent(String),
    /// The connection's lock was poisoned by a panic elsewhere.
    #[error("store database: connection lock poisoned")]
    Poisoned,
    /// A blocking task could not run.
    #[error("store database: {0}")]
    Task(String),
}

/// The store: one connection, serialised. Its writes are small (a consent version, a batch of
/// decision records), so a pool would add nothing but contention.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// A second connection for decision records, with `synchronous = NORMAL`: records are committed
    /// without an fsync of their own. Each is already anchored (durably) in the ledger, and the
    /// documented guarantee for ordinary records is "up to the last batch window" anyway; security
    /// alerts are written through [`Store::run_blocking`] on the FULL connection instead.
    log: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the store at `path`, checking it first.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_checked(path, SCHEMA, SCHEMA_VERSION, |_| Ok(())).map_err(|e| match e {
            OpenError::Sql(e) => StoreError::Sql(e),
            OpenError::Damaged(m) => StoreError::Inconsistent(format!("damaged: {m}")),
            OpenError::Version(m) => StoreError::Inconsistent(m),
        })?;
        let log = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        log.busy_timeout(Duration::from_secs(10))?;
        log.pragma_update(None, "synchronous", "NORMAL")?;
        log.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            log: Arc::new(Mutex::new(log)),
        })
    }

    /// Runs `f` on the decision-record connection, on this thread (the recorder's own).
    pub fn run_log<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.log.lock().map_err(|_| StoreError::Poisoned)?;
        f(&mut conn)
    }

    /// The connection, for one short operation.
    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Runs `f` on the connection off the async threads.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.lock()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` on the connection on this thread (command-line tools, tests).
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock()?;
        f(&mut conn)
    }
}

/// Why a SQLite database could not be opened for use.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// SQLite refused.
    Sql(rusqlite::Error),
    /// `PRAGMA quick_check` found damage.
    Damaged(String),
    /// Written by another schema version.
    Version(String),
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        OpenError::Sql(e)
    }
}

/// Opens a database the way every Anchorgate store is opened: WAL with `synchronous = FULL` (a
/// committed transaction survives power loss), foreign keys on, `setup` (e.g. a size cap), a quick
/// check (damage is found before anything is written or served), then `schema` and its version,
/// which must be `version` (a store from another version is refused, never migrated silently).
pub(crate) fn open_checked(
    path: &Path,
    schema: &str,
    version: i64,
    setup: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> Result<Connection, OpenError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    setup(&conn)?;
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(OpenError::Damaged(check));
    }
    conn.execute_batch(schema)?;
    let found: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match found {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                [version.to_string()],
            )?;
        }
        Some(v) if v == version.to_string() => {}
        Some(v) => {
            return Err(OpenError::Version(format!(
                "schema version {v}, this gateway writes {version}"
            )))
        }
    }
    Ok(conn)
}
