//! Benchmarks of the ledger's CPU work: leaf hashing, commitments, appending to the tree (tiles),
//! proofs and roots read from a stored 100,000-entry tree. Durable throughput (fsync) is measured by
//! `benches/ledger_durable.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark set-up on known input

use std::collections::BTreeMap;
use std::hint::black_box;

use anchorgate::ledger::edge::Edge;
use anchorgate::ledger::entry::{commitment, Entry, EntryType};
use anchorgate::ledger::hash::{self, leaf_hash};
use anchorgate::ledger::proof;
use anchorgate::ledger::source::StoreTiles;
use anchorgate::ledger::store::Store;
use anchorgate::ledger::{AnchorRequest, Ledger, STORE_FILE};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn cpu(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger");
    let entry = Entry::new(EntryType::ResourceVersion, [7u8; 32], 1_700_000_000).encode();
    g.throughput(Throughput::Elements(1));
    g.bench_function("leaf_hash", |b| b.iter(|| leaf_hash(black_box(&entry))));
    // A Synthea-sized Patient's canonical form is about 2 KiB.
    let payload = vec![b'x'; 2048];
    g.bench_function("commitment_2KiB", |b| {
        b.iter(|| commitment(EntryType::ResourceVersion, &[3u8; 32], black_box(&payload)))
    });
    // Appending 256 entries: encode, leaf hash, tree edge, the changed tiles (what a batch does in
    // memory before its one fsync).
    g.throughput(Throughput::Elements(256));
    g.bench_function("append_256_to_tree_and_tiles", |b| {
        let mut edge = Edge::default();
        for i in 0..70_000u64 {
            edge.push(leaf_hash(&i.to_be_bytes()), &mut BTreeMap::new());
        }
        b.iter(|| {
            let mut e = edge.clone();
            let mut full = BTreeMap::new();
            for i in 0..256u64 {
                let entry = Entry::new(EntryType::ResourceVersion, [i as u8; 32], 60).encode();
                e.push(leaf_hash(&entry), &mut full);
            }
            black_box(e.partial_tiles().count() + full.len())
        })
    });
    g.finish();
}

fn stored(c: &mut Criterion) {
    let (dir, cfg) = support::ledger_dir("ledger", 4096);
    let n = 100_000u64;
    let rt = support::runtime();
    let n = rt.block_on(async {
        let ledger = Ledger::open(&cfg, &dir.join("ledger")).unwrap();
        for chunk in 0..n / 1000 {
            let reqs = (0..1000)
                .map(|i| AnchorRequest {
                    kind: EntryType::ResourceVersion,
                    payload: (chunk * 1000 + i).to_be_bytes().to_vec(),
                    resource: None,
                })
                .collect();
            ledger.anchor_many(reqs).await.unwrap();
        }
        ledger.shutdown();
        ledger.size()
    });
    let path = dir.join("ledger").join(STORE_FILE);
    let reader = Store::open_reader(&path).unwrap();
    let mut g = c.benchmark_group("ledger_stored_100k");
    g.throughput(Throughput::Elements(1));
    g.bench_function("inclusion_proof", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) % n;
            proof::inclusion(&StoreTiles::new(&reader), i, n)
                .unwrap()
                .unwrap()
        })
    });
    g.bench_function("consistency_proof", |b| {
        let mut m = 1u64;
        b.iter(|| {
            m = (m + 7919) % (n - 1) + 1;
            proof::consistency(&StoreTiles::new(&reader), m, n)
                .unwrap()
                .unwrap()
        })
    });
    g.bench_function("root", |b| {
        b.iter(|| hash::root(&StoreTiles::new(&reader), black_box(n)).unwrap())
    });
    g.finish();
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, cpu, stored);
criterion_main!(benches);
