//! Durable appends per second: the ledger's sequencer (group commit, one SQLite transaction and fsync
//! per batch) under concurrent appenders, against two floors measured in the same run on the same
//! disk: 42-byte records appended to a file with one `fdatasync` per entry (what an unbatched design
//! can do) and one per 256 entries (the best any design with 256-entry batches can do).
//!
//! `cargo bench -p anchorgate --bench ledger_durable` (ENTRIES, APPENDERS env vars to change the run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anchorgate::ledger::entry::EntryType;
use anchorgate::ledger::source::StoreTiles;
use anchorgate::ledger::{proof, AnchorRequest, Ledger};

mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fsync_floor(dir: &std::path::Path, entries: u64, per_sync: u64) -> f64 {
    let path = dir.join(format!("floor-{per_sync}"));
    let mut f = std::fs::File::create(&path).unwrap();
    let rec = [0x5Au8; 44];
    let start = Instant::now();
    for i in 1..=entries {
        f.write_all(&rec).unwrap();
        if i % per_sync == 0 {
            f.sync_data().unwrap();
        }
    }
    f.sync_data().unwrap();
    let rate = entries as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).ok();
    rate
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run a tiny smoke then.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let entries = if smoke {
        2_000
    } else {
        env("ENTRIES", 200_000)
    };
    let appenders = env("APPENDERS", 512);
    let (dir, cfg) = support::ledger_dir("durable", 256);
    let rt = support::runtime();
    let payload = vec![b'x'; 2048];
    let (rate, committed, batches, sizes) = rt.block_on(async {
        let ledger = Ledger::open(&cfg, &dir.join("ledger")).unwrap();
        let per = entries / appenders;
        let start = Instant::now();
        let tasks: Vec<_> = (0..appenders)
            .map(|a| {
                let ledger: Arc<Ledger> = ledger.clone();
                let payload = payload.clone();
                tokio::spawn(async move {
                    for i in 0..per {
                        let req = AnchorRequest {
                            kind: EntryType::ResourceVersion,
                            payload: payload.clone(),
                            resource: Some((
                                "Patient".into(),
                                format!("p{a}-{i}"),
                                Some("1".into()),
                            )),
                        };
                        ledger
                            .anchor_many(vec![req])
                            .await
                            .unwrap()
                            .pop()
                            .unwrap()
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let rate = (per * appenders) as f64 / start.elapsed().as_secs_f64();
        let (c, b) = ledger.stats();
        ledger.shutdown();
        // Proof sizes at this tree size: hashes, and bytes as served (JSON, base64).
        let n = ledger.size();
        let sizes = ledger
            .read(move |s| {
                let tiles = StoreTiles::new(s);
                let inc = proof::inclusion(&tiles, n / 3, n)?.unwrap();
                let con = proof::consistency(&tiles, n / 3, n)?.unwrap();
                Ok((n, inc.len(), con.len()))
            })
            .await
            .unwrap();
        (rate, c, b, sizes)
    });
    let floor_1 = fsync_floor(&dir, if smoke { 200 } else { 5_000 }, 1);
    let floor_256 = fsync_floor(&dir, entries, 256);
    println!(
        "ledger durable append: {rate:.0} entries/s ({appenders} concurrent appenders, {committed} entries in {batches} batches, mean batch {:.0})",
        committed as f64 / batches.max(1) as f64
    );
    println!(
        "  floor, fdatasync per entry:       {floor_1:.0} entries/s  (ledger = {:.1}x)",
        rate / floor_1
    );
    println!(
        "  floor, fdatasync per 256 entries: {floor_256:.0} entries/s  (ledger = {:.2}x)",
        rate / floor_256
    );
    let (n, inc, con) = sizes;
    // JSON as /ledger/proof/* serves it: 44 base64 characters plus quotes and a comma per hash.
    println!(
        "  proofs at {n} entries: inclusion {inc} hashes ({} B raw, ~{} B JSON), consistency {con} hashes ({} B raw, ~{} B JSON)",
        inc * 32,
        inc * 47 + 120,
        con * 32,
        con * 47 + 140
    );
    std::fs::remove_dir_all(&dir).ok();
}
