//! The ledger's system of record: one SQLite database holding the entries, the hash tiles, the salts and
//! the (type, id, version) → leaf mapping, and the signed checkpoints.
//!
//! Every batch of entries is one transaction with `synchronous = FULL` in WAL mode, so a batch is durable
//! (fsynced) when [`Store::append`] returns, and a crash leaves either all of it or none of it. Entries,
//! tiles and salts can never disagree, which is why they share one database rather than tile files plus
//! a salt database (two fsyncs per batch, and a window in which they differ).

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::entry::{self, LEN};
use super::hash::Hash;
use super::tile::WIDTH;

/// The schema version this code writes; a store with another refuses to open.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tiles (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS anchors (
    leaf INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    rtype TEXT, rid TEXT, version TEXT,
    salt BLOB,
    canonical_sha256 BLOB,
    erased INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS anchors_by_resource ON anchors (rtype, rid, version);
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL);
";

/// A store failure. `Full` and `Corrupt` are told apart because operators act on them differently.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk, or the configured cap, is full.
    #[error("the ledger store is full: {0}")]
    Full(String),
    /// The database is damaged.
    #[error("the ledger store is corrupt: {0}")]
    Corrupt(String),
    /// The store's contents contradict themselves (e.g. a tile of the wrong width).
    #[error("the ledger store is inconsistent: {0}")]
    Inconsistent(String),
    /// Any other database error.
    #[error("the ledger store failed: {0}")]
    Other(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DiskFull) => StoreError::Full(e.to_string()),
            Some(C::DatabaseCorrupt | C::NotADatabase) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// What the store keeps about one entry besides the entry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The leaf index.
    pub leaf: u64,
    /// The entry type code.
    pub kind: u8,
    /// Resource type, for resource and consent entries.
    pub rtype: Option<String>,
    /// Resource id.
    pub rid: Option<String>,
    /// Resource version id (as the upstream assigned it).
    pub version: Option<String>,
    /// The salt; `None` once erased.
    pub salt: Option<[u8; 32]>,
    /// SHA-256 of the canonical payload, so a receipt can say what was committed; `None` once erased.
    pub canonical_sha256: Option<Hash>,
    /// Whether the salt was erased.
    pub erased: bool,
}

/// One batch to make durable: its entries (in leaf order from `first`), their anchors, and the tiles
/// it changed.
#[derive(Debug, Default)]
pub struct Batch {
    /// The leaf index of the first entry.
    pub first: u64,
    /// Encoded entries.
    pub entries: Vec<[u8; LEN]>,
    /// One per entry, same order.
    pub anchors: Vec<Anchor>,
    /// (level, index, bytes) of every hash tile the batch changed, full or partial.
    pub tiles: Vec<(u8, u64, Vec<u8>)>,
}

/// A connection to the ledger database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the store at `path` with the durability settings the ledger relies on.
    /// `max_bytes`, when set, caps the database size (the same "full" error as a full disk).
    pub fn open(path: &Path, max_bytes: Option<u64>) -> Result<Self, StoreError> {
        use crate::store::{open_checked, OpenError};
        let cap = |conn: &Connection| -> rusqlite::Result<()> {
            if let Some(max) = max_bytes {
                let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
                let pages = (max as i64 / page.max(1)).max(16);
                conn.pragma_update(None, "max_page_count", pages)?;
            }
            Ok(())
        };
        let conn = open_checked(path, SCHEMA, SCHEMA_VERSION, cap).map_err(|e| match e {
            OpenError::Sql(e) => StoreError::from(e),
            OpenError::Damaged(m) => StoreError::Corrupt(m),
            OpenError::Version(m) => StoreError::Inconsistent(m),
        })?;
        Ok(Self { conn })
    }

    /// A read-only connection to the same database (proof and tile readers).
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(Self { conn })
    }

    /// A value from the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a value in the `meta` table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// The number of entries (the tree size), checking that the indices have no gaps.
    pub fn size(&self) -> Result<u64, StoreError> {
        let (count, max): (i64, Option<i64>) =
            self.conn
                .query_row("SELECT count(*), max(idx) FROM entries", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        let expected = max.map_or(0, |m| m + 1);
        if count != expected {
            return Err(StoreError::Inconsistent(format!(
                "{count} entries but the last index is {}",
                expected - 1
            )));
        }
        Ok(count as u64)
    }

    /// Makes a batch durable: one transaction, fsynced at commit.
    pub fn append(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut put_entry =
                tx.prepare_cached("INSERT INTO entries (idx, data) VALUES (?1, ?2)")?;
            let mut put_anchor = tx.prepare_cached(
                "INSERT INTO anchors (leaf, kind, rtype, rid, version, salt, canonical_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (i, (e, a)) in batch.entries.iter().zip(&batch.anchors).enumerate() {
                let idx = batch.first as i64 + i as i64;
                put_entry.execute(params![idx, &e[..]])?;
                put_anchor.execute(params![
                    idx,
                    a.kind,
                    a.rtype,
                    a.rid,
                    a.version,
                    a.salt.as_ref().map(|s| &s[..]),
                    a.canonical_sha256.as_ref().map(|s| &s[..]),
                ])?;
            }
            let mut put_tile = tx.prepare_cached(
                "INSERT INTO tiles (level, idx, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT(level, idx) DO UPDATE SET data = excluded.data",
            )?;
            for (level, idx, data) in &batch.tiles {
                put_tile.execute(params![level, *idx as i64, data])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The stored bytes of hash tile (level, index): a full tile (8 KiB), or for levels above 0 the
    /// current partial one. Level-0 partial tiles are not stored (see [`Self::hash_tile`]).
    pub fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT data FROM tiles WHERE level = ?1 AND idx = ?2")?
            .query_row(params![level, index as i64], |r| r.get(0))
            .optional()?)
    }

    /// The first `width` hashes of hash tile (level, index), or `None` if the tree does not have them
    /// yet. The level-0 tile still filling is computed from its entries: storing it would rewrite up to
    /// 8 KiB at every commit for what 255 leaf hashes give back in microseconds.
    pub fn hash_tile(
        &self,
        level: u8,
        index: u64,
        width: u16,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let want = usize::from(width) * 32;
        if let Some(d) = self.tile(level, index)?.filter(|d| d.len() >= want) {
            return Ok(Some(d[..want].to_vec()));
        }
        if level != 0 {
            return Ok(None);
        }
        let entries = self.entries(index * WIDTH, u64::from(width))?;
        if entries.len() != usize::from(width) {
            return Ok(None);
        }
        Ok(Some(
            entries
                .iter()
                .flat_map(|e| super::hash::leaf_hash(e))
                .collect(),
        ))
    }

    /// Entries `[from, from + count)`, or fewer if the log is shorter.
    pub fn entries(&self, from: u64, count: u64) -> Result<Vec<[u8; LEN]>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT idx, data FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
        )?;
        let rows = stmt.query_map(params![from as i64, (from + count) as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for (i, row) in rows.enumerate() {
            let (idx, data) = row?;
            if idx as u64 != from + i as u64 {
                return Err(StoreError::Inconsistent(format!(
                    "entry {} is missing",
                    from + i as u64
                )));
            }
            let e: [u8; LEN] = data.try_into().map_err(|d: Vec<u8>| {
                StoreError::Inconsistent(format!("entry {idx} is {} bytes", d.len()))
            })?;
            out.push(e);
        }
        Ok(out)
    }

    /// The bytes of any tile, as c2sp tlog-tiles serves it: a hash tile or an entry bundle of
    /// `id.width`; `None` if the log does not have them (yet).
    pub fn tile_data(&self, id: &super::tile::TileId) -> Result<Option<Vec<u8>>, StoreError> {
        match id.level {
            Some(l) => self.hash_tile(l, id.index, id.width),
            None => self.bundle(id.index, id.width),
        }
    }

    /// The entry bundle of tile `index`, `width` entries.
    pub fn bundle(&self, index: u64, width: u16) -> Result<Option<Vec<u8>>, StoreError> {
        let entries = self.entries(index * WIDTH, u64::from(width))?;
        Ok((entries.len() == usize::from(width)).then(|| entry::bundle(&entries)))
    }

    /// The anchor of one resource version, or of its latest anchored version when `version` is `None`.
    pub fn find(
        &self,
        rtype: &str,
        rid: &str,
        version: Option<&str>,
    ) -> Result<Option<Anchor>, StoreError> {
        let sql = match version {
            Some(_) => {
                "SELECT leaf, kind, rtype, rid, version, salt, canonical_sha256, erased FROM anchors
                 WHERE rtype = ?1 AND rid = ?2 AND version = ?3 ORDER BY leaf DESC LIMIT 1"
            }
            None => {
                "SELECT leaf, kind, rtype, rid, version, salt, canonical_sha256, erased FROM anchors
                 WHERE rtype = ?1 AND rid = ?2 ORDER BY leaf DESC LIMIT 1"
            }
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let row = match version {
            Some(v) => stmt.query_row(params![rtype, rid, v], anchor_row),
            None => stmt.query_row(params![rtype, rid], anchor_row),
        };
        Ok(row.optional()?)
    }

    /// What the store keeps about the entry at `leaf`, if it is a resource or consent entry.
    pub fn anchor_at(&self, leaf: u64) -> Result<Option<Anchor>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT leaf, kind, rtype, rid, version, salt, canonical_sha256, erased FROM anchors
             WHERE leaf = ?1",
        )?;
        Ok(stmt
            .query_row(params![leaf as i64], anchor_row)
            .optional()?)
    }

    /// Deletes the salts (and canonical hashes) of every entry of a resource, durably; answers the
    /// leaves erased.
    pub fn erase(&mut self, rtype: &str, rid: &str) -> Result<Vec<u64>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let leaves = {
            let mut stmt = tx.prepare(
                "UPDATE anchors SET salt = NULL, canonical_sha256 = NULL, erased = 1
                 WHERE rtype = ?1 AND rid = ?2 AND erased = 0 RETURNING leaf",
            )?;
            let rows = stmt.query_map(params![rtype, rid], |r| r.get::<_, i64>(0))?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r? as u64);
            }
            out.sort_unstable();
            out
        };
        tx.commit()?;
        Ok(leaves)
    }

    /// How many entries a resource has, erased or not.
    pub fn anchored_count(&self, rtype: &str, rid: &str) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM anchors WHERE rtype = ?1 AND rid = ?2",
            params![rtype, rid],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The latest signed checkpoint: (size, root, note).
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, Hash, String)>, StoreError> {
        let row: Option<(i64, Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        row.map(|(size, root, note)| {
            let root: Hash = root.try_into().map_err(|_| {
                StoreError::Inconsistent(format!("checkpoint {size} has a malformed root"))
            })?;
            Ok((size as u64, root, note))
        })
        .transpose()
    }

    /// Records a signed checkpoint (durably).
    pub fn save_checkpoint(&self, size: u64, root: &Hash, note: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO checkpoints (size, root, note) VALUES (?1, ?2, ?3)
             ON CONFLICT(size) DO NOTHING",
            params![size as i64, &root[..], note],
        )?;
        Ok(())
    }

    /// Copies every committed page from the write-ahead log into the database file and empties the
    /// log (`wal_checkpoint(TRUNCATE)`); fails if another connection is still reading or writing.
    pub fn fold_wal(&self) -> Result<(), StoreError> {
        let (busy, _, _): (i64, i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        if busy != 0 {
            return Err(StoreError::Other(
                "another connection held the write-ahead log".into(),
            ));
        }
        Ok(())
    }

    /// Proves the store accepts writes again after a failure: commits 64 KiB of new pages (room for
    /// more than one batch) and frees them. Rewriting an existing row would pass on a full store.
    pub fn probe(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("CREATE TABLE IF NOT EXISTS probe (data BLOB NOT NULL)")?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("INSERT INTO probe (data) VALUES (zeroblob(65536))", [])?;
        tx.commit()?;
        self.conn.execute("DELETE FROM probe", [])?;
        Ok(())
    }
}

fn anchor_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Anchor> {
    let salt: Option<Vec<u8>> = r.get(5)?;
    let hash: Option<Vec<u8>> = r.get(6)?;
    Ok(Anchor {
        leaf: r.get::<_, i64>(0)? as u64,
        kind: r.get(1)?,
        rtype: r.get(2)?,
        rid: r.get(3)?,
        version: r.get(4)?,
        salt: salt.and_then(|s| s.try_into().ok()),
        canonical_sha256: hash.and_then(|s| s.try_into().ok()),
        erased: r.get::<_, i64>(7)? != 0,
    })
}
