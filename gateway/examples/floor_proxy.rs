//! The least any hyper-based inspecting proxy costs: the load harness's "floor" target.
//!
//! Anchorgate must see a whole response before it releases any of it (to judge every entry), so
//! the floor is a proxy built from the same parts that does exactly that and nothing more: hyper's
//! HTTP/1.1 server on one current-thread runtime, hyper-util's pooled client, mimalloc, the whole
//! upstream body collected, then sent on. No identity, policy, validation, rewriting or ledger.
//! Its throughput against the nginx peer is the ceiling any gateway built on these crates can reach
//! on this machine, which is what the gateway's own ratio should be read against (tests/load).
//!
//! With `--bound DIR` it becomes the harness's "bound" target: the floor plus the least work the
//! issues mandate per request, each part done the cheapest way we know, so its ratio to nginx is an
//! upper bound on what any implementation of those requirements can reach here:
//! - a request body is parsed into a tree and validated against the base R4 specification (the
//!   gateway's own validator, without the profiles the gateway also checks);
//! - a response body gets one full JSON syntax pass (judging a Bundle's entries needs at least that);
//! - a create's stored version is put in its canonical form (the gateway's own one-pass
//!   canonicaliser);
//! - every request's decision, and a create's stored version, get a salted SHA-256 commitment that a
//!   group-committing thread (batch scheduling class, like the gateway's sequencer) makes durable
//!   (SQLite, WAL, `synchronous = FULL`: an fsync per batch), a decision together with a small record
//!   indexed by patient and time (the decision records reviewers query); a create's response waits
//!   for that, a read's decision is only queued (as Anchorgate queues every decision but security
//!   alerts).
//!
//! Everything else Anchorgate does is left out: token checks, consent and policy, the profiles,
//! URL rewriting, the Merkle tree and tiles, the decision store's other indexes, audit fields,
//! telemetry.
//!
//! Usage: `floor_proxy LISTEN_ADDR UPSTREAM_HOST:PORT [--bound DIR]` (plain HTTP only).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;

use anchorgate::fhir::canonical::text::canonical_from_text;
use anchorgate::ledger::entry::{self, EntryType};
use anchorgate::validate::{is_valid, Validator};
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rusqlite::{params, Connection};
use tokio::sync::oneshot;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Upstream = Client<HttpConnector, Full<Bytes>>;

/// A decision's stored record: what a reviewer's query finds it by, and the record itself.
struct Decision {
    /// Unix seconds.
    time: i64,
    /// What it concerned (here the request path: the bound has no patient to name).
    patient: String,
    /// The record, JSON.
    record: String,
}

/// Commitments to make durable (with the decision's record, for a decision), and where to say the
/// first one's index once they are.
type Job = (
    Vec<([u8; 32], Option<Decision>)>,
    oneshot::Sender<Result<i64, String>>,
);

/// The bound mode's per-request work, shared by all connections.
#[derive(Clone)]
struct Bound {
    jobs: mpsc::Sender<Job>,
}

impl Bound {
    /// Opens the record database in `dir` and starts its group-committing thread.
    fn start(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let conn = Connection::open(dir.join("bound.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A decision's record is kept beside its commitment, with the two indexes a reviewer's commonest
        // questions need (by patient, by time); Anchorgate's decision store has more.
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS records (idx INTEGER PRIMARY KEY, commitment BLOB NOT NULL,
                 time INTEGER, patient TEXT, record TEXT);
             CREATE INDEX IF NOT EXISTS records_by_patient ON records (patient, idx);
             CREATE INDEX IF NOT EXISTS records_by_time ON records (time);",
        )?;
        let next: i64 =
            conn.query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM records", [], |r| {
                r.get(0)
            })?;
        let (jobs, rx) = mpsc::channel();
        // Scheduled as the gateway's own sequencer is (batch class), so batches grow the same way.
        anchorgate::threads::spawn_background("bound-commit", move || commit_loop(conn, next, rx))?;
        Ok(Self { jobs })
    }

    /// Queues a decision's `commitment` and record for the next batch without waiting for them.
    fn enqueue(&self, commitment: [u8; 32], decision: Decision) -> Result<()> {
        let (tx, _) = oneshot::channel();
        self.jobs
            .send((vec![(commitment, Some(decision))], tx))
            .map_err(|_| anyhow::anyhow!("committer stopped"))
    }

    /// Makes `commitments` durable; the index of the first.
    async fn append(&self, commitments: Vec<([u8; 32], Option<Decision>)>) -> Result<i64> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((commitments, tx))
            .map_err(|_| anyhow::anyhow!("committer stopped"))?;
        rx.await?.map_err(anyhow::Error::msg)
    }
}

/// Group commit as Anchorgate's sequencer does it (no linger): everything queued while the last batch
/// was being written goes into the next transaction.
fn commit_loop(mut conn: Connection, mut next: i64, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let written = (|| -> rusqlite::Result<Vec<i64>> {
            let tx = conn.transaction()?;
            let mut firsts = Vec::with_capacity(batch.len());
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO records (idx, commitment, time, patient, record)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (commitments, _) in &batch {
                    firsts.push(next);
                    for (c, d) in commitments {
                        let (time, patient, record) = match d {
                            Some(d) => (Some(d.time), Some(&d.patient), Some(&d.record)),
                            None => (None, None, None),
                        };
                        put.execute(params![next, &c[..], time, patient, record])?;
                        next += 1;
                    }
                }
            }
            tx.commit()?;
            Ok(firsts)
        })();
        match written {
            Ok(firsts) => {
                for ((_, reply), idx) in batch.into_iter().zip(firsts) {
                    let _ = reply.send(Ok(idx));
                }
            }
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// A commitment exactly as Anchorgate makes one: its own salt source and commitment rule.
fn commitment(kind: EntryType, payload: &[u8]) -> [u8; 32] {
    entry::commitment(kind, &entry::fresh_salt(), payload)
}

/// An answer for input the bound mode refuses, so a bad body is never timed as a success.
fn refuse(status: http::StatusCode, what: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(what.to_owned())));
    *r.status_mut() = status;
    r
}

async fn forward(
    client: Upstream,
    authority: String,
    bound: Option<Bound>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>> {
    let (mut parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query(path.as_str())
        .build()?;
    parts.headers.remove(http::header::HOST);
    let body = body.collect().await?.to_bytes();
    if bound.is_some() && !body.is_empty() {
        let Ok(tree) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return Ok(refuse(http::StatusCode::BAD_REQUEST, "malformed JSON"));
        };
        // The base specification's rules only: the gateway also checks the profiles in `profiles/`.
        if !is_valid(&Validator::r4().validate(&tree)) {
            return Ok(refuse(
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid resource",
            ));
        }
    }
    let resp = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (mut parts, body) = resp.into_parts();
    // Collected in full, as a gateway that judges the response must.
    let body = body.collect().await?.to_bytes();
    if let Some(bound) = bound {
        if !body.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            return Ok(refuse(
                http::StatusCode::BAD_GATEWAY,
                "malformed upstream JSON",
            ));
        }
        // The decision's record: the least a reviewer needs (what, when, the outcome), serialised
        // once and committed to as it is stored.
        let time = anchorgate::server::enforce::now_unix() as i64;
        let record = serde_json::json!({
            "interaction": method.as_str(),
            "path": path,
            "status": parts.status.as_u16(),
            "time": time,
        })
        .to_string();
        let decision = commitment(EntryType::Decision, record.as_bytes());
        let decision_row = Decision {
            time,
            patient: path.split('?').next().unwrap_or_default().to_owned(),
            record,
        };
        if method == http::Method::POST && parts.status.is_success() {
            // A created version is durable before the client hears of it, committed to in its canonical
            // form (issue 4), made in one pass over the text as the gateway makes it.
            let Some(canonical) = std::str::from_utf8(&body)
                .ok()
                .and_then(|t| canonical_from_text(t, &|_| None).ok())
            else {
                return Ok(refuse(
                    http::StatusCode::BAD_GATEWAY,
                    "malformed upstream JSON",
                ));
            };
            let version = commitment(EntryType::ResourceVersion, &canonical.bytes);
            let leaf = bound
                .append(vec![(version, None), (decision, Some(decision_row))])
                .await?;
            parts.headers.insert("x-bound-leaf", leaf.into());
        } else {
            // A decision is queued, as Anchorgate queues all but security alerts: written and fsynced
            // in the committer's next batch, not waited for.
            bound.enqueue(decision, decision_row)?;
        }
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .context("usage: floor_proxy LISTEN_ADDR UPSTREAM_HOST:PORT")?
        .parse()?;
    let authority = args.next().context("missing UPSTREAM_HOST:PORT")?;
    let bound = match (args.next().as_deref(), args.next()) {
        (Some("--bound"), Some(dir)) => Some(Bound::start(Path::new(&dir))?),
        (None, _) => None,
        _ => anyhow::bail!("usage: floor_proxy LISTEN_ADDR UPSTREAM_HOST:PORT [--bound DIR]"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(http);
        let listener = tokio::net::TcpListener::bind(listen).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let (client, authority, bound) = (client.clone(), authority.clone(), bound.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    forward(client.clone(), authority.clone(), bound.clone(), req)
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                if let Err(e) = conn.await {
                    eprintln!("connection: {e}");
                }
            });
        }
    })
}
