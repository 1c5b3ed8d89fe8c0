//! Writes decision records: each is anchored as a decision entry, then stored with its leaf, in batches.
//!
//! Ordinary decisions are queued and the response does not wait for them: waiting for an fsync on
//! every read would cost each read a disk flush of latency, and the record is derived from the
//! request, not given by the client, so there is nothing to acknowledge. The queue is flushed as
//! often as the ledger's group commit runs, so a crash loses at most the decisions of the last
//! batch window. Security alerts (break-glass, ignored tampered consents) are the exception: the response waits until the record is
//! anchored and stored, so a security alert can never be lost (LEDGER.md, "Decision records").

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::record::DecisionRecord;
use crate::ledger::entry::EntryType;
use crate::ledger::{AnchorRequest, Ledger};
use crate::store::Store;

/// Decisions queued beyond this make requests wait (back-pressure rather than unbounded memory).
const QUEUE: usize = 8192;
/// Records written per store transaction at most.
const BATCH: usize = 512;

type Job = (
    DecisionRecord,
    Option<oneshot::Sender<Result<Option<u64>, String>>>,
);

/// The handle requests record through.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Job>,
}

impl Recorder {
    /// Starts the writer on its own thread (with a small runtime of its own, so that it neither
    /// needs nor competes with the request runtime's scheduler).
    pub fn start(store: Store, ledger: Option<Arc<Ledger>>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("decision-recorder".into())
            .spawn(move || rt.block_on(run(rx, store, ledger)))?;
        Ok(Self { tx })
    }

    /// Queues a record; returns at once.
    pub async fn record(&self, rec: DecisionRecord) {
        if self.tx.send((rec, None)).await.is_err() {
            tracing::error!("decision recorder stopped: a decision record was NOT written");
        }
    }

    /// Records and waits until the record is anchored and stored; answers its leaf.
    pub async fn record_durably(&self, rec: DecisionRecord) -> Result<Option<u64>, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((rec, Some(tx)))
            .await
            .map_err(|_| "the decision recorder stopped".to_owned())?;
        rx.await
            .map_err(|_| "the decision recorder stopped".to_owned())?
    }
}

async fn run(mut rx: mpsc::Receiver<Job>, store: Store, ledger: Option<Arc<Ledger>>) {
    let mut jobs = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut jobs, BATCH).await > 0 {
        let batch = std::mem::take(&mut jobs);
        let result = write(&store, ledger.as_ref(), batch).await;
        if let Err(e) = result {
            tracing::error!(error = %e, "decision records could NOT be written");
        }
    }
}

/// Anchors and stores one batch, answering every waiter.
async fn write(store: &Store, ledger: Option<&Arc<Ledger>>, batch: Vec<Job>) -> Result<(), String> {
    let (mut records, waiters): (Vec<DecisionRecord>, Vec<_>) = batch.into_iter().unzip();
    let mut failure = None;
    if let Some(ledger) = ledger {
        let reqs = records
            .iter()
            .map(|r| AnchorRequest {
                kind: EntryType::Decision,
                payload: r.committed_bytes(),
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
    let rows: Vec<_> = records.iter().map(DecisionRecord::row).collect();
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
    for (r, w) in records.iter().zip(waiters) {
        if let Some(w) = w {
            let _ = w.send(match &failure {
                Some(f) => Err(f.clone()),
                None => Ok(r.leaf),
            });
        }
    }
    failure.map_or(Ok(()), Err)
}
