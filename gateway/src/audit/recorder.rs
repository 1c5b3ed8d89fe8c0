//! Writes decision records: each is anchored as a decision entry, then stored with its leaf, in batches.
//!
//! Ordinary decisions are queued and the response does not wait for them: waiting for an fsync on
//! every read would cost each read a disk flush of latency, and the record is derived from the
//! request, not given by the client, so there is nothing to acknowledge. The writer wakes at most
//! once per [`LINGER`] and takes everything queued: at a few thousand requests a second, waking per
//! request made every decision pay for its own ledger commit and store transaction (about a third
//! of a read's CPU). A crash therefore loses at most the decisions of the last window. Security
//! alerts (break-glass, ignored tampered consents) are the exception: they wake the writer at once,
//! and the response waits until the record is anchored and stored, so a security alert can never be
//! lost (LEDGER.md, "Consent versions and decisions"). Reviewers' queries [`Recorder::flush`] first, so
//! they see every decision made before they asked.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};

use super::record::DecisionRecord;
use crate::ledger::entry::EntryType;
use crate::ledger::{AnchorRequest, Ledger};
use crate::store::Store;

/// Decisions queued beyond this make requests wait (back-pressure rather than unbounded memory).
const QUEUE: usize = 8192;
/// Records written per store transaction at most.
const BATCH: usize = 512;
/// How long queued decisions may wait for others before they are written.
const LINGER: Duration = Duration::from_millis(10);

/// Someone waiting for a record (or, with no record, for everything queued before it) to be written.
type Waiter = oneshot::Sender<Result<Option<u64>, String>>;

type Job = (Option<DecisionRecord>, Option<Waiter>);

/// The handle requests record through.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Job>,
    /// Wakes the writer before its window ends: someone is waiting.
    urgent: Arc<Notify>,
}

impl Recorder {
    /// Starts the writer on its own thread (with a small runtime of its own, so that it neither
    /// needs nor competes with the request runtime's scheduler).
    pub fn start(store: Store, ledger: Option<Arc<Ledger>>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let urgent = Arc::new(Notify::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let wake = urgent.clone();
        // The normal scheduling class, unlike the sequencer's (`crate::threads`): the recorder wakes on its
        // window's timer, not per request, so it never preempted requests one by one; in the batch class
        // it ran whole windows at once at the next tick, which cost reads and creates CPU and tail
        // latency (LEDGER.md, "Batch size").
        std::thread::Builder::new()
            .name("decision-recorder".into())
            .spawn(move || rt.block_on(run(rx, wake, store, ledger)))?;
        Ok(Self { tx, urgent })
    }

    /// Queues a record; returns at once.
    pub async fn record(&self, rec: DecisionRecord) {
        if self.tx.send((Some(rec), None)).await.is_err() {
            tracing::error!("decision recorder stopped: a decision record was NOT written");
        }
    }

    /// Records and waits until the record is anchored and stored; answers its leaf.
    pub async fn record_durably(&self, rec: DecisionRecord) -> Result<Option<u64>, String> {
        self.wait((Some(rec), None)).await
    }

    /// Waits until every record queued before the call is stored, for at most `within`.
    pub async fn flush(&self, within: Duration) -> Result<(), String> {
        match tokio::time::timeout(within, self.wait((None, None))).await {
            Ok(done) => done.map(drop),
            Err(_) => Err(format!("not stored within {within:?}")),
        }
    }

    async fn wait(&self, (rec, _): Job) -> Result<Option<u64>, String> {
        let stopped = || "the decision recorder stopped".to_owned();
        let (tx, rx) = oneshot::channel();
        self.tx.send((rec, Some(tx))).await.map_err(|_| stopped())?;
        self.urgent.notify_one();
        rx.await.map_err(|_| stopped())?
    }
}

async fn run(
    mut rx: mpsc::Receiver<Job>,
    urgent: Arc<Notify>,
    store: Store,
    ledger: Option<Arc<Ledger>>,
) {
    let mut jobs = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut jobs, BATCH).await > 0 {
        if jobs.len() < BATCH && jobs.iter().all(|j| j.1.is_none()) {
            // Let the window fill; senders do not wake this thread meanwhile (nothing polls `rx`).
            tokio::select! {
                () = tokio::time::sleep(LINGER) => {}
                () = urgent.notified() => {}
            }
            while jobs.len() < BATCH {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
        }
        let batch = std::mem::take(&mut jobs);
        let result = write(&store, ledger.as_ref(), batch).await;
        if let Err(e) = result {
            tracing::error!(error = %e, "decision records could NOT be written");
        }
    }
}

/// Anchors and stores one batch, answering every waiter.
async fn write(store: &Store, ledger: Option<&Arc<Ledger>>, batch: Vec<Job>) -> Result<(), String> {
    // Flush barriers hold no record: they are answered with the batch.
    let (mut records, mut waiters) = (Vec::with_capacity(batch.len()), Vec::new());
    let mut barriers = Vec::new();
    for (rec, waiter) in batch {
        match rec {
            Some(r) => {
                records.push(r);
                waiters.push(waiter);
            }
            None => barriers.extend(waiter),
        }
    }
    if records.is_empty() {
        for b in barriers {
            let _ = b.send(Ok(None));
        }
        return Ok(());
    }
    let mut failure = None;
    // The committed form is made once: anchored, then stored as the record (the store adds the leaf
    // back from its column when it is read), instead of serialising every record a second time.
    records.iter_mut().for_each(DecisionRecord::sort_reasons);
    let committed: Vec<Option<Vec<u8>>> = records
        .iter()
        .map(|r| ledger.is_some().then(|| r.committed_bytes()))
        .collect();
    if let Some(ledger) = ledger {
        let reqs = records
            .iter()
            .zip(&committed)
            .map(|(r, payload)| AnchorRequest {
                kind: EntryType::Decision,
                payload: payload.clone().unwrap_or_default(),
                resource: Some(("decision".to_owned(), r.id.clone(), None)),
            })
            .collect();
        match ledger.anchor_many(reqs).await {
            Ok(leaves) => {
                for (r, leaf) in records.iter_mut().zip(leaves) {
                    match leaf {
                        Ok(l) => r.leaf = Some(l),
                        Err(e) => failure = Some(format!("anchoring a decision: {e}")),
                    }
                }
            }
            Err(e) => failure = Some(format!("anchoring decisions: {e}")),
        }
    }
    let rows: Vec<_> = records
        .iter()
        .zip(committed)
        .map(|(r, c)| r.row_with(c))
        .collect();
    // This thread does nothing else, so the insert runs here rather than on a blocking pool. A batch
    // holding a security alert (someone waits on it) is committed with a full fsync.
    let alert = waiters.iter().any(Option::is_some);
    let insert = |c: &mut rusqlite::Connection| crate::store::decisions::insert(c, &rows);
    let stored = if alert {
        store.run_blocking(insert)
    } else {
        store.run_log(insert)
    }
    .map_err(|e| e.to_string());
    if let Err(e) = &stored {
        failure = Some(format!("storing decisions: {e}"));
    }
    let barriers = barriers.into_iter().map(|b| (None, b));
    let waiting = records
        .iter()
        .zip(waiters)
        .filter_map(|(r, w)| Some((r.leaf, w?)));
    for (leaf, w) in waiting.chain(barriers) {
        let _ = w.send(match &failure {
            Some(f) => Err(f.clone()),
            None => Ok(leaf),
        });
    }
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn record(id: &str) -> DecisionRecord {
        DecisionRecord {
            id: id.into(),
            outcome: "permit".into(),
            interaction: "read".into(),
            patients: vec!["Patient/p".into()],
            ..DecisionRecord::default()
        }
    }

    fn stored(store: &Store, id: &str) -> bool {
        let id = id.to_owned();
        store
            .run_blocking(move |c| crate::store::decisions::get(c, &id))
            .unwrap()
            .is_some()
    }

    #[tokio::test]
    async fn queued_decisions_are_stored_by_a_flush_and_alerts_at_once() {
        let dir = std::env::temp_dir().join(format!("anchorgate-recorder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("s.sqlite")).unwrap();
        let rec = Recorder::start(store.clone(), None).unwrap();
        for i in 0..3 {
            rec.record(record(&format!("d{i}"))).await;
        }
        // A reviewer's query flushes first: every decision made before it is visible.
        rec.flush(Duration::from_secs(10)).await.unwrap();
        assert!((0..3).all(|i| stored(&store, &format!("d{i}"))));
        // An alert is stored before `record_durably` returns, whatever the window.
        rec.record(record("queued")).await;
        rec.record_durably(record("alert")).await.unwrap();
        assert!(stored(&store, "alert") && stored(&store, "queued"));
        // A flush with nothing queued answers at once.
        rec.flush(Duration::from_secs(10)).await.unwrap();
        std::fs::remove_dir_all(dir).ok();
    }
}
