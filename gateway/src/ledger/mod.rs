//! The ledger: an append-only RFC 6962 Merkle log of salted commitments, stored as c2sp tlog-tiles,
//! with Ed25519-signed c2sp checkpoints and RFC 9162 proofs. The format is specified in
//! `gateway/LEDGER.md`.

pub mod config;
pub mod edge;
pub mod entry;
pub mod hash;
pub mod mirror;
pub mod note;
pub mod proof;
pub mod sequencer;
pub mod source;
pub mod store;
pub mod tile;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use config::LedgerConfig;
use entry::EntryType;
use note::{Checkpoint, NoteSigner};
use sequencer::{AppendError, BatchLimits, Record, Sequencer};
use source::StoreTiles;
use store::{Anchor, Store, StoreError};

/// The store's file name inside the ledger directory.
pub const STORE_FILE: &str = "ledger.sqlite";
/// The mirror's directory inside the ledger directory.
pub const MIRROR_DIR: &str = "log";

/// Why the ledger cannot start or answer.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// No signing key was configured.
    #[error("no ledger signing key: set ledger.key_file (made by `anchorgate keygen`) or {}, or ask for a development key with ledger.ephemeral_key = true / --ephemeral-ledger-key", config::ENV_LEDGER_KEY)]
    NoKey,
    /// The key could not be read or parsed.
    #[error("ledger signing key: {0}")]
    Key(String),
    /// The store failed or contradicts itself or its checkpoints.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file or thread could not be set up.
    #[error("ledger: {0}")]
    Io(String),
    /// An append did not become durable.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// A proof asked for outside the tree.
    #[error(transparent)]
    Proof(#[from] proof::ProofError),
    /// Another process (a running gateway) has the ledger open.
    #[error("the ledger in {0} is in use by another process (a running gateway?); stop it first")]
    Locked(String),
    /// An erasure named a resource with no entry left to erase; nothing was appended.
    #[error("nothing to erase: {0}")]
    NothingToErase(String),
}

/// One entry to anchor: its type, payload and, for resources, (type, id, version).
#[derive(Debug, Clone)]
pub struct AnchorRequest {
    /// The entry type.
    pub kind: EntryType,
    /// The payload committed to (a canonical form, a tombstone, an event).
    pub payload: Vec<u8>,
    /// Resource type, id and version, for the store's mapping.
    pub resource: Option<(String, String, Option<String>)>,
}

impl AnchorRequest {
    /// The entry to append: a fresh salt, the commitment, and what the store keeps beside it.
    fn into_record(self) -> Result<Record, LedgerError> {
        use sha2::{Digest, Sha256};
        let salt = entry::fresh_salt();
        let (rtype, rid, version) = match self.resource {
            Some((t, i, v)) => (Some(t), Some(i), v),
            None => (None, None, None),
        };
        Ok(Record {
            kind: self.kind,
            commitment: entry::commitment(self.kind, &salt, &self.payload),
            anchor: Anchor {
                leaf: 0,
                kind: self.kind as u8,
                rtype,
                rid,
                version,
                salt: Some(salt),
                canonical_sha256: Some(Sha256::digest(&self.payload).into()),
                erased: false,
            },
        })
    }
}

/// A signed checkpoint, as published.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    /// The body.
    pub checkpoint: Checkpoint,
    /// The whole signed note.
    pub note: String,
}

/// Whether a payload matches what the ledger committed to at a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commitment {
    /// The payload is what was committed to.
    Matches,
    /// The entry is of another resource or type, or commits to something else.
    Mismatch,
    /// Nothing is anchored at that leaf.
    Unanchored,
    /// The salt was erased; nothing can be proven any more.
    Erased,
}

/// A running ledger.
#[derive(Debug)]
pub struct Ledger {
    dir: PathBuf,
    /// Held (an exclusive file lock) for the ledger's lifetime: one process appends at a time.
    _lock: std::fs::File,
    signer: NoteSigner,
    sequencer: Sequencer,
    readers: Mutex<Vec<Store>>,
    /// The checkpointer's own write connection (checkpoints table, mirror reads).
    cp_store: Mutex<Store>,
    latest: RwLock<Option<Arc<SignedCheckpoint>>>,
    /// Set when the checkpointer refused to sign (the store contradicts its last checkpoint).
    refused: AtomicBool,
    stop: Arc<AtomicBool>,
    interval: Duration,
    /// Whether the static mirror is kept (`ledger.mirror`).
    mirror: bool,
    /// The tree size the mirror holds: the next export starts there.
    mirrored: AtomicU64,
}

/// Reads the signing key as configured.
pub fn load_key(cfg: &LedgerConfig) -> Result<NoteSigner, LedgerError> {
    if let Some(path) = &cfg.key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LedgerError::Key(format!("{}: {e}", path.display())))?;
        return NoteSigner::parse(&text).map_err(|e| LedgerError::Key(e.to_string()));
    }
    if let Ok(text) = std::env::var(config::ENV_LEDGER_KEY) {
        return NoteSigner::parse(&text)
            .map_err(|e| LedgerError::Key(format!("{}: {e}", config::ENV_LEDGER_KEY)));
    }
    if cfg.ephemeral_key {
        let signer = NoteSigner::generate("anchorgate.invalid/ephemeral")
            .map_err(|e| LedgerError::Key(e.to_string()))?;
        tracing::warn!(
            verifier = %signer.verifier().encode(),
            "LEDGER IS USING AN EPHEMERAL DEVELOPMENT KEY: checkpoints cannot be verified after a restart; never use this in production"
        );
        return Ok(signer);
    }
    Err(LedgerError::NoKey)
}

impl Ledger {
    /// Opens the ledger in `dir`: checks the store against its last checkpoint, then starts the
    /// sequencer and the checkpointer.
    pub fn open(cfg: &LedgerConfig, dir: &Path) -> Result<Arc<Self>, LedgerError> {
        let signer = load_key(cfg)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| LedgerError::Io(format!("{}: {e}", dir.display())))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("ledger.lock"))
            .map_err(|e| LedgerError::Io(format!("{}: {e}", dir.display())))?;
        if lock.try_lock().is_err() {
            return Err(LedgerError::Locked(dir.display().to_string()));
        }
        let path = dir.join(STORE_FILE);
        let store = Store::open(&path, cfg.max_store_bytes)?;
        // The origin is the log's identity: a different key name means a different log.
        match store.meta("origin")? {
            Some(o) if o != signer.name() && !cfg.ephemeral_key => {
                return Err(LedgerError::Key(format!(
                    "this store belongs to the log {o:?}, the key is for {:?}",
                    signer.name()
                )))
            }
            Some(_) => {}
            None => store.set_meta("origin", signer.name())?,
        }
        let size = store.size()?;
        let latest = match store.latest_checkpoint()? {
            Some((cp_size, cp_root, note)) => {
                if size < cp_size {
                    return Err(StoreError::Inconsistent(format!(
                        "the store has {size} entries but checkpoint {cp_size} was signed: acknowledged entries are missing; refusing to start (never truncating)"
                    ))
                    .into());
                }
                let root = hash::root(&StoreTiles::new(&store), cp_size)?;
                if root != cp_root {
                    return Err(StoreError::Inconsistent(format!(
                        "the stored tree of {cp_size} entries does not match its signed checkpoint; refusing to start"
                    ))
                    .into());
                }
                // Size and root as stored (just checked against the tree); the origin is the note's.
                let checkpoint = Checkpoint {
                    origin: note.lines().next().unwrap_or(signer.name()).to_owned(),
                    size: cp_size,
                    root: cp_root,
                };
                Some(Arc::new(SignedCheckpoint { checkpoint, note }))
            }
            None => None,
        };
        let edge = edge::Edge::load(&store, size)?;
        let limits = BatchLimits {
            max_batch: cfg.batch_max_entries,
            linger: Duration::from_millis(cfg.batch_linger_ms),
        };
        let (sequencer, _thread) = Sequencer::start(store, edge, limits)
            .map_err(|e| LedgerError::Io(format!("sequencer thread: {e}")))?;
        let cp_store = Mutex::new(Store::open(&path, cfg.max_store_bytes)?);
        let ledger = Arc::new(Self {
            dir: dir.to_owned(),
            _lock: lock,
            signer,
            sequencer,
            readers: Mutex::new(Vec::new()),
            cp_store,
            latest: RwLock::new(latest),
            refused: AtomicBool::new(false),
            stop: Arc::new(AtomicBool::new(false)),
            interval: Duration::from_millis(cfg.checkpoint_interval_ms),
            mirror: cfg.mirror,
            // A mirror claiming more than the tree (another log's, or edited) is rewritten whole.
            mirrored: AtomicU64::new(
                Some(mirror::exported_size(&dir.join(MIRROR_DIR)))
                    .filter(|&n| n <= size)
                    .unwrap_or(0),
            ),
        });
        ledger.record_key_change()?;
        // Sign at once: the first checkpoint (possibly of the empty tree) is published before any
        // client can ask for it.
        ledger.sign_pending()?;
        let weak = Arc::downgrade(&ledger);
        let stop = ledger.stop.clone();
        let interval = ledger.interval;
        crate::threads::spawn_background("ledger-checkpointer", move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(interval);
                let Some(l) = weak.upgrade() else { return };
                if let Err(e) = l.sign_pending() {
                    tracing::error!(error = %e, "ledger checkpoint NOT signed");
                }
            }
        })
        .map_err(|e| LedgerError::Io(format!("checkpointer thread: {e}")))?;
        Ok(ledger)
    }

    /// The checkpointer's own connection (key events, checkpoints, the mirror), held for one step.
    fn checkpoint_store(&self) -> Result<std::sync::MutexGuard<'_, Store>, LedgerError> {
        self.cp_store
            .lock()
            .map_err(|_| LedgerError::Io("checkpointer lock poisoned".into()))
    }

    /// Records a key-event entry when this log is signed with a key other than last time (first start
    /// or rotation), so the key history is itself on the ledger.
    fn record_key_change(&self) -> Result<(), LedgerError> {
        let verifier = self.verifier_key();
        let writer = self.checkpoint_store()?;
        let previous = writer.meta("verifier")?;
        if previous.as_deref() == Some(verifier.as_str()) {
            return Ok(());
        }
        let payload = crate::fhir::canonical::canonical_bytes(&serde_json::json!({
            "event": "signing-key",
            "verifier": verifier,
            "previous": previous,
        }));
        let record = AnchorRequest {
            kind: EntryType::KeyEvent,
            payload,
            resource: None,
        }
        .into_record()?;
        // Queued, not awaited: this runs inside start-up, possibly on an async thread; the entry is
        // durable within one batch and in the next checkpoint.
        drop(self.sequencer.submit(record)?);
        writer.set_meta("verifier", &verifier)?;
        tracing::info!(verifier = %verifier, previous = previous.as_deref().unwrap_or("none"), "ledger signing key recorded");
        Ok(())
    }

    /// The verifier key of this log, in signed-note form.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier().encode()
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// Durable entries.
    pub fn size(&self) -> u64 {
        self.sequencer.shared().size.load(Ordering::SeqCst)
    }

    /// Entries and batches committed since start: their ratio is the mean batch size.
    pub fn stats(&self) -> (u64, u64) {
        let s = self.sequencer.shared();
        (
            s.committed.load(Ordering::Relaxed),
            s.batches.load(Ordering::Relaxed),
        )
    }

    /// Whether writes can be anchored now: the last commit worked and signing was not refused.
    pub fn healthy(&self) -> bool {
        self.sequencer.shared().healthy.load(Ordering::SeqCst)
            && !self.refused.load(Ordering::SeqCst)
    }

    /// Why the ledger is unhealthy, if it is.
    pub fn problem(&self) -> Option<String> {
        if self.refused.load(Ordering::SeqCst) {
            return Some(
                "checkpoint signing was refused: the store does not extend the last checkpoint"
                    .into(),
            );
        }
        if !self.sequencer.shared().healthy.load(Ordering::SeqCst) {
            return Some(
                self.sequencer
                    .shared()
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|g| g.clone())
                    .unwrap_or_else(|| "the store refused a write".into()),
            );
        }
        None
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> Option<Arc<SignedCheckpoint>> {
        self.latest.read().ok().and_then(|g| g.clone())
    }

    /// Commits to `payload` with a fresh salt and appends the entry; answers the leaf index once it is
    /// durable. The same (type, id, version) with the same content is anchored once.
    pub async fn anchor(
        self: &Arc<Self>,
        kind: EntryType,
        payload: &[u8],
        resource: Option<(&str, &str, Option<&str>)>,
    ) -> Result<u64, LedgerError> {
        let req = AnchorRequest {
            kind,
            payload: payload.to_vec(),
            resource: resource.map(|(t, i, v)| (t.to_owned(), i.to_owned(), v.map(str::to_owned))),
        };
        self.anchor_many(vec![req])
            .await?
            .pop()
            .unwrap_or(Err(LedgerError::Append(AppendError::Stopped)))
    }

    /// Anchors several entries, queued in the order given (so a Bundle's entries get increasing leaf
    /// indices), all committed in as few batches as the sequencer can; one result per request.
    pub async fn anchor_many(
        self: &Arc<Self>,
        reqs: Vec<AnchorRequest>,
    ) -> Result<Vec<Result<u64, LedgerError>>, LedgerError> {
        // The "already anchored?" question is answered by the sequencer on its own connection.
        let mut waits = Vec::with_capacity(reqs.len());
        for req in reqs {
            waits.push(self.sequencer.submit(req.into_record()?));
        }
        // Waited for last first. The sequencer answers in queue order, so once the last is answered every
        // earlier one is too (a version found already anchored is answered sooner, which costs a wake-up
        // at most): one wake-up per batch. Waiting first to last woke this task once per entry,
        // and each wake-up preempted the sequencer in the middle of answering (it runs in the batch
        // class): two context switches per decision record (LEDGER.md, "Batch size").
        let mut out = Vec::with_capacity(waits.len());
        for w in waits.into_iter().rev() {
            out.push(match w {
                Ok(rx) => sequencer::wait(rx).await.map_err(LedgerError::from),
                Err(e) => Err(LedgerError::from(e)),
            });
        }
        out.reverse();
        Ok(out)
    }

    /// Whether `payload` is exactly what the entry at `leaf` committed to, as an entry of type `kind`
    /// for `(rtype, id)`: the check a consent must pass before any decision uses it.
    pub async fn holds(
        self: &Arc<Self>,
        leaf: u64,
        kind: EntryType,
        rtype: &str,
        id: &str,
        payload: Vec<u8>,
    ) -> Result<Commitment, LedgerError> {
        let (t, i) = (rtype.to_owned(), id.to_owned());
        self.read(move |s| {
            let Some(anchor) = s.anchor_at(leaf)? else {
                return Ok(Commitment::Unanchored);
            };
            if anchor.kind != kind as u8
                || anchor.rtype.as_deref() != Some(t.as_str())
                || anchor.rid.as_deref() != Some(i.as_str())
            {
                return Ok(Commitment::Mismatch);
            }
            let Some(salt) = anchor.salt else {
                return Ok(Commitment::Erased);
            };
            let raw = s.entries(leaf, 1)?;
            let Some(bytes) = raw.first() else {
                return Ok(Commitment::Unanchored);
            };
            let entry = entry::Entry::decode(bytes)
                .map_err(|e| StoreError::Inconsistent(format!("leaf {leaf}: {e}")))?;
            Ok(
                if entry.kind == kind
                    && entry::commitment(kind, &salt, &payload) == entry.commitment
                {
                    Commitment::Matches
                } else {
                    Commitment::Mismatch
                },
            )
        })
        .await
    }

    /// Runs `f` on a read connection, off the async threads.
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, LedgerError>
    where
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.read_blocking(f))
            .await
            .map_err(|e| LedgerError::Io(format!("reader task: {e}")))?
    }

    /// Runs `f` on a read connection from the pool.
    pub fn read_blocking<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, LedgerError> {
        let pooled = self.readers.lock().ok().and_then(|mut p| p.pop());
        let store = match pooled {
            Some(s) => s,
            None => Store::open_reader(&self.dir.join(STORE_FILE))?,
        };
        let out = f(&store);
        if let Ok(mut p) = self.readers.lock() {
            if p.len() < 16 {
                p.push(store);
            }
        }
        Ok(out?)
    }

    /// Signs a checkpoint if there are entries the last one does not cover, after checking that the
    /// stored tree extends the last checkpoint; refuses (and marks the ledger unhealthy) otherwise.
    pub fn sign_pending(&self) -> Result<(), LedgerError> {
        let size = self.size();
        let last = self.checkpoint();
        if let Some(c) = last.as_ref().filter(|c| c.checkpoint.size >= size) {
            // Nothing to sign; a mirror left behind (a failed export, or newly enabled) catches up.
            if self.mirror && self.mirrored.load(Ordering::SeqCst) < c.checkpoint.size {
                let writer = self.checkpoint_store()?;
                self.update_mirror(&writer, c.checkpoint.size, &c.note);
            }
            return Ok(());
        }
        let (root, consistent) = self.read_blocking(|s| {
            let tiles = StoreTiles::new(s);
            let root = hash::root(&tiles, size)?;
            let consistent = match &last {
                None => Ok(()),
                Some(c) => {
                    let old = c.checkpoint.size;
                    match proof::consistency(&tiles, old, size)? {
                        Ok(p) => {
                            proof::verify_consistency(old, size, &c.checkpoint.root, &root, &p)
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            Ok((root, consistent))
        })?;
        if let Err(e) = consistent {
            self.refused.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, size, "REFUSING to sign: the stored tree is not consistent with the last checkpoint");
            return Err(e.into());
        }
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root,
        };
        let note = self
            .signer
            .sign(&checkpoint.text())
            .map_err(|e| LedgerError::Key(e.to_string()))?;
        // Recorded durably before it is published, so a published checkpoint is never forgotten.
        let writer = self.checkpoint_store()?;
        writer.save_checkpoint(size, &root, &note)?;
        if self.mirror {
            self.update_mirror(&writer, size, &note);
        }
        if let Ok(mut g) = self.latest.write() {
            *g = Some(Arc::new(SignedCheckpoint { checkpoint, note }));
        }
        Ok(())
    }

    /// Brings the static mirror up to the checkpoint (`size`, `note`), from what it holds rather than
    /// from the previous checkpoint, so the tiles of a failed export are written by the next one.
    fn update_mirror(&self, writer: &Store, size: u64, note: &str) {
        let from = self.mirrored.load(Ordering::SeqCst).min(size);
        match mirror::export(writer, &self.dir.join(MIRROR_DIR), from, size, note) {
            Ok(()) => self.mirrored.store(size, Ordering::SeqCst),
            Err(e) => tracing::warn!(error = %e, "ledger mirror not updated"),
        }
    }

    /// GDPR erasure: deletes the salts of every entry of a resource, so they can never again be linked
    /// to any content, and records the erasure as a key-event entry holding no identifier (only the
    /// erased leaf indices, themselves committed with a salt). Answers (erased leaves, key-event leaf);
    /// [`LedgerError::NothingToErase`], with nothing appended, when no entry of it is left to erase.
    pub async fn erase(
        self: &Arc<Self>,
        rtype: &str,
        id: &str,
    ) -> Result<(Vec<u64>, u64), LedgerError> {
        let (t, i) = (rtype.to_owned(), id.to_owned());
        let dir = self.dir.clone();
        let erased = tokio::task::spawn_blocking(move || {
            let mut store = Store::open(&dir.join(STORE_FILE), None)?;
            let erased = store.erase(&t, &i)?;
            // An erasure of nothing records nothing: a key event for a mistyped id would sit in the
            // log for ever, claiming an erasure that never happened.
            if erased.is_empty() {
                let why = match store.anchored_count(&t, &i)? {
                    0 => format!("the ledger has no entry of {t}/{i}"),
                    n => format!("the {n} entries of {t}/{i} were already erased"),
                };
                return Err(LedgerError::NothingToErase(why));
            }
            Ok(erased)
        })
        .await
        .map_err(|e| LedgerError::Io(e.to_string()))??;
        let payload = serde_json::json!({"event": "erasure", "erasedLeaves": erased});
        let leaf = self
            .anchor(
                EntryType::KeyEvent,
                &crate::fhir::canonical::canonical_bytes(&payload),
                None,
            )
            .await?;
        Ok((erased, leaf))
    }

    /// Stops the checkpointer after one last signing (graceful shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.sign_pending() {
            tracing::error!(error = %e, "final ledger checkpoint NOT signed");
        }
        self.stop.store(true, Ordering::SeqCst);
        // Fold the write-ahead log into the database file, so that a stopped gateway leaves one
        // self-contained file (to copy, back up or inspect); nothing is lost if this fails.
        let folded = self
            .cp_store
            .lock()
            .map_err(|_| "lock poisoned".to_owned())
            .and_then(|s| s.fold_wal().map_err(|e| e.to_string()));
        if let Err(e) = folded {
            tracing::warn!(error = %e, "the ledger's write-ahead log was not folded into its file");
        }
    }
}

#[cfg(test)]
mod tests;
