//! The sequencer: one thread that owns the store's write connection, takes queued entries in batches,
//! assigns leaf indices and makes each batch durable before anyone hears its indices.
//!
//! Batching is group commit: while one batch is being fsynced, new entries queue, and the next batch
//! takes all of them (up to `max_batch`). Under load batches grow on their own; at low load a lone entry
//! is committed at once instead of waiting. `linger` adds an optional wait for more entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use super::edge::Edge;
use super::entry::{Entry, EntryType};
use super::hash::{leaf_hash, Hash};
use super::store::{Anchor, Batch, Store, StoreError};

/// Entries that may wait in the queue; beyond it, appends are refused rather than buffered without bound.
const QUEUE: usize = 65_536;

/// One entry to append, with what the store keeps about it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The entry type.
    pub kind: EntryType,
    /// SHA-256(domain ‖ salt ‖ payload).
    pub commitment: Hash,
    /// What the store keeps (its `leaf` is assigned here).
    pub anchor: Anchor,
}

/// (type, id, version, content hash): what makes two anchors the same version.
type VersionKey = (Option<String>, Option<String>, Option<String>, Option<Hash>);

struct Job {
    record: Record,
    reply: oneshot::Sender<Result<u64, String>>,
}

/// State the sequencer shares with readers and the checkpointer.
#[derive(Debug, Default)]
pub struct Shared {
    /// Leaves that are durable.
    pub size: AtomicU64,
    /// False after a failed commit, until the store accepts a write again.
    pub healthy: AtomicBool,
    /// Why the last commit failed.
    pub last_error: Mutex<Option<String>>,
    /// Entries committed, and batches, since start (for metrics and benchmarks).
    pub committed: AtomicU64,
    /// Batches committed since start.
    pub batches: AtomicU64,
}

/// Why an append did not become durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The queue is full: the store cannot keep up.
    #[error("the ledger queue is full")]
    Busy,
    /// The sequencer has stopped.
    #[error("the ledger has stopped")]
    Stopped,
    /// The batch could not be made durable.
    #[error("the ledger could not make the entry durable: {0}")]
    Store(String),
}

/// An entry queued by [`Sequencer::submit`].
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Result<u64, String>>);

/// Waits until a queued entry is durable; answers its leaf index.
pub async fn wait(p: Pending) -> Result<u64, AppendError> {
    match p.0.await {
        Ok(Ok(i)) => Ok(i),
        Ok(Err(e)) => Err(AppendError::Store(e)),
        Err(_) => Err(AppendError::Stopped),
    }
}

/// Batching limits.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most entries in one batch.
    pub max_batch: usize,
    /// How long the first entry of a batch may wait for others.
    pub linger: Duration,
}

/// The handle appends go through.
#[derive(Debug, Clone)]
pub struct Sequencer {
    tx: SyncSender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

impl Sequencer {
    /// Starts the sequencer thread over `store`, whose tree has `edge.size()` leaves.
    pub fn start(
        store: Store,
        edge: Edge,
        limits: BatchLimits,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let shared = Arc::new(Shared::default());
        shared.size.store(edge.size(), Ordering::SeqCst);
        shared.healthy.store(true, Ordering::SeqCst);
        let worker = Worker {
            store,
            edge,
            limits,
            shared: shared.clone(),
        };
        let handle = crate::threads::spawn_background("ledger-sequencer", move || worker.run(rx))?;
        Ok((Self { tx, shared }, handle))
    }

    /// Queues an entry and waits until it is durable; answers its leaf index.
    pub async fn append(&self, record: Record) -> Result<u64, AppendError> {
        wait(self.submit(record)?).await
    }

    /// Queues an entry now; [`wait`] for it. Entries submitted in order get leaves in order and are
    /// answered in that order, except a version already anchored, which is answered as soon as it is
    /// found.
    pub fn submit(&self, record: Record) -> Result<Pending, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Job { record, reply })
            .map_err(|e| match e {
                mpsc::TrySendError::Full(_) => AppendError::Busy,
                mpsc::TrySendError::Disconnected(_) => AppendError::Stopped,
            })?;
        Ok(Pending(rx))
    }

    /// Appends from a thread that is not async (CLI, benchmarks).
    pub fn append_blocking(&self, record: Record) -> Result<u64, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { record, reply })
            .map_err(|_| AppendError::Stopped)?;
        match rx.blocking_recv() {
            Ok(Ok(i)) => Ok(i),
            Ok(Err(e)) => Err(AppendError::Store(e)),
            Err(_) => Err(AppendError::Stopped),
        }
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

struct Worker {
    store: Store,
    edge: Edge,
    limits: BatchLimits,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Job>) {
        loop {
            let first = if self.shared.healthy.load(Ordering::SeqCst) {
                match rx.recv() {
                    Ok(j) => j,
                    Err(_) => return,
                }
            } else {
                // After a failure, probe the store once a second until it takes writes again.
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(j) => j,
                    Err(RecvTimeoutError::Timeout) => {
                        if self.store.probe().is_ok() {
                            tracing::warn!("ledger store accepts writes again");
                            self.shared.healthy.store(true, Ordering::SeqCst);
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            let jobs = self.gather(first, &rx);
            self.commit(jobs);
        }
    }

    fn gather(&self, first: Job, rx: &Receiver<Job>) -> Vec<Job> {
        let mut jobs = vec![first];
        let deadline = Instant::now() + self.limits.linger;
        while jobs.len() < self.limits.max_batch {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    match rx.recv_timeout(deadline - now) {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            }
        }
        jobs
    }

    /// Answers the jobs whose (type, id, version) is already anchored with the same content with that
    /// leaf, and returns the others (a repeat inside the batch is left to [`Self::commit`]). Done on the
    /// writer's own connection: no thread hop and no pool, which a lookup per write would otherwise cost.
    fn dedupe(&self, jobs: Vec<Job>) -> Vec<Job> {
        let mut rest = Vec::with_capacity(jobs.len());
        for job in jobs {
            let a = &job.record.anchor;
            if let (Some(t), Some(i), Some(v)) = (&a.rtype, &a.rid, &a.version) {
                if let Ok(Some(found)) = self.store.find(t, i, Some(v)) {
                    if found.kind == job.record.kind as u8
                        && found.canonical_sha256 == a.canonical_sha256
                    {
                        let _ = job.reply.send(Ok(found.leaf));
                        continue;
                    }
                }
            }
            rest.push(job);
        }
        rest
    }

    fn commit(&mut self, jobs: Vec<Job>) {
        let jobs = self.dedupe(jobs);
        if jobs.is_empty() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Work on a copy of the edge: a failed commit must leave the tree as it was.
        let mut edge = self.edge.clone();
        let first = edge.size();
        let mut batch = Batch {
            first,
            ..Batch::default()
        };
        let mut full = BTreeMap::new();
        // Leaves of this batch by (type, id, version, hash): a repeat in the batch reuses the first.
        let mut in_batch: HashMap<VersionKey, u64> = HashMap::new();
        let mut leaves = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let a = &job.record.anchor;
            let key = (
                a.rtype.clone(),
                a.rid.clone(),
                a.version.clone(),
                a.canonical_sha256,
            );
            if a.version.is_some() {
                if let Some(&leaf) = in_batch.get(&key) {
                    leaves.push(leaf);
                    continue;
                }
            }
            let leaf = first + batch.entries.len() as u64;
            let entry = Entry::new(job.record.kind, job.record.commitment, now).encode();
            edge.push(leaf_hash(&entry), &mut full);
            batch.entries.push(entry);
            let mut anchor = job.record.anchor.clone();
            anchor.leaf = leaf;
            anchor.kind = job.record.kind as u8;
            batch.anchors.push(anchor);
            if a.version.is_some() {
                in_batch.insert(key, leaf);
            }
            leaves.push(leaf);
        }
        // Higher levels change only when a tile fills: most batches write no tile at all.
        let filled = !full.is_empty();
        batch.tiles = full
            .into_iter()
            .map(|((l, i), d)| (l, i, d))
            .chain(edge.partial_tiles().filter(|_| filled))
            .collect();
        match self.store.append(&batch) {
            Ok(()) => {
                self.edge = edge;
                self.shared.size.store(self.edge.size(), Ordering::SeqCst);
                self.shared
                    .committed
                    .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
                self.shared.batches.fetch_add(1, Ordering::Relaxed);
                for (job, leaf) in jobs.into_iter().zip(leaves) {
                    let _ = job.reply.send(Ok(leaf));
                }
            }
            Err(e) => {
                let kind = match e {
                    StoreError::Full(_) => "full",
                    StoreError::Corrupt(_) => "corrupt",
                    _ => "error",
                };
                tracing::error!(error = %e, kind, entries = jobs.len(), "ledger batch NOT durable; writes are refused until the store recovers");
                self.shared.healthy.store(false, Ordering::SeqCst);
                if let Ok(mut g) = self.shared.last_error.lock() {
                    *g = Some(e.to_string());
                }
                for job in jobs {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
