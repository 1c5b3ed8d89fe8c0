//! Ledger tests: published RFC 6962 vectors, proofs against an in-memory reference, the store-backed
//! tree, durability across reopen, and refusal to sign over a tampered store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::hash::{leaf_hash, root_of_leaves, Hash, HashSource, MemoryTree};
use super::proof::{consistency, inclusion, verify_consistency, verify_inclusion};
use super::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn h(s: &str) -> Hash {
    unhex(s).try_into().unwrap()
}

/// transparency-dev/merkle `testonly` (and certificate-transparency-go) RFC 6962 vectors.
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn vector_tree() -> MemoryTree {
    MemoryTree {
        leaves: LEAVES.iter().map(|l| leaf_hash(&unhex(l))).collect(),
    }
}

#[test]
fn roots_match_the_published_vectors() {
    let t = vector_tree();
    for (n, want) in ROOTS.iter().enumerate() {
        assert_eq!(hash::root(&t, n as u64).unwrap(), h(want), "size {n}");
    }
}

#[test]
fn proofs_match_the_published_vectors() {
    let t = vector_tree();
    let cases: [(u64, u64, &[&str]); 2] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (i, n, want) in cases {
        let got = inclusion(&t, i, n).unwrap().unwrap();
        assert_eq!(got, want.iter().map(|s| h(s)).collect::<Vec<_>>());
        verify_inclusion(&t.leaves[i as usize], i, n, &got, &h(ROOTS[n as usize])).unwrap();
    }
    let cons: [(u64, u64, &[&str]); 3] = [
        (
            2,
            8,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (m, n, want) in cons {
        let got = consistency(&t, m, n).unwrap().unwrap();
        assert_eq!(got, want.iter().map(|s| h(s)).collect::<Vec<_>>());
        verify_consistency(m, n, &h(ROOTS[m as usize]), &h(ROOTS[n as usize]), &got).unwrap();
    }
}

#[test]
fn every_proof_of_small_trees_verifies_and_tampering_fails() {
    let t = MemoryTree {
        leaves: (0u32..40).map(|i| leaf_hash(&i.to_be_bytes())).collect(),
    };
    let roots: Vec<Hash> = (0..=40).map(|n| hash::root(&t, n).unwrap()).collect();
    for n in 1..=40u64 {
        for i in 0..n {
            let p = inclusion(&t, i, n).unwrap().unwrap();
            let leaf = t.leaves[i as usize];
            verify_inclusion(&leaf, i, n, &p, &roots[n as usize]).unwrap();
            assert!(
                verify_inclusion(&leaf, (i + 1) % n, n, &p, &roots[n as usize]).is_err() || n == 1
            );
            if let Some(first) = p.first() {
                let mut bad = p.clone();
                bad[0] = leaf_hash(first);
                assert!(verify_inclusion(&leaf, i, n, &bad, &roots[n as usize]).is_err());
            }
        }
        for m in 0..=n {
            let p = consistency(&t, m, n).unwrap().unwrap();
            verify_consistency(m, n, &roots[m as usize], &roots[n as usize], &p).unwrap();
            if m > 0 && m < n {
                // A different old root (a fork) never verifies.
                assert!(
                    verify_consistency(m, n, &leaf_hash(b"fork"), &roots[n as usize], &p).is_err()
                );
            }
        }
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "anchorgate-ledger-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn record(i: u64) -> Record {
    Record {
        kind: EntryType::ResourceVersion,
        commitment: leaf_hash(&i.to_be_bytes()),
        anchor: Anchor {
            leaf: 0,
            kind: 1,
            rtype: Some("Patient".into()),
            rid: Some(format!("p{i}")),
            version: Some("1".into()),
            salt: Some([1u8; 32]),
            canonical_sha256: Some([2u8; 32]),
            erased: false,
        },
    }
}

#[test]
fn the_stored_tree_agrees_with_the_reference_and_survives_reopening() {
    let dir = temp_dir("store");
    let path = dir.join(STORE_FILE);
    let store = Store::open(&path, None).unwrap();
    let (seq, thread) = Sequencer::start(
        store,
        edge::Edge::default(),
        BatchLimits {
            max_batch: 256,
            linger: Duration::ZERO,
        },
    )
    .unwrap();
    // 70,000 entries: three tile levels, full and partial tiles at each.
    let n = 70_000u64;
    std::thread::scope(|s| {
        for w in 0..4u64 {
            let seq = seq.clone();
            s.spawn(move || {
                for i in (w..n).step_by(4) {
                    seq.append_blocking(record(i)).unwrap();
                }
            });
        }
    });
    drop(seq);
    thread.join().unwrap();

    let store = Store::open(&path, None).unwrap();
    assert_eq!(store.size().unwrap(), n);
    let entries = store.entries(0, n).unwrap();
    let mem = MemoryTree {
        leaves: entries.iter().map(|e| leaf_hash(e)).collect(),
    };
    let tiles = StoreTiles::new(&store);
    for size in [1, 255, 256, 257, 65_535, 65_536, 65_537, n] {
        assert_eq!(
            hash::root(&tiles, size).unwrap(),
            hash::root(&mem, size).unwrap()
        );
    }
    assert_eq!(hash::root(&tiles, n).unwrap(), root_of_leaves(&mem.leaves));
    for (i, size) in [(0, n), (65_535, n), (n - 1, n), (300, 70_000 - 3)] {
        assert_eq!(
            inclusion(&tiles, i, size).unwrap().unwrap(),
            inclusion(&mem, i, size).unwrap().unwrap()
        );
    }
    assert_eq!(
        consistency(&tiles, 1000, n).unwrap().unwrap(),
        consistency(&mem, 1000, n).unwrap().unwrap()
    );
    // The reloaded edge continues the same tree.
    let edge = edge::Edge::load(&store, n).unwrap();
    assert_eq!(edge.size(), n);
    assert_eq!(mem.node(16, 0).unwrap(), tiles.node(16, 0).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

/// A fresh signing key written to `dir/key`, and a configuration that uses it and signs only when asked.
fn keyed(dir: &std::path::Path) -> (NoteSigner, LedgerConfig) {
    let signer = NoteSigner::generate("test.example/log").unwrap();
    let key_file = dir.join("key");
    std::fs::write(&key_file, signer.encode()).unwrap();
    let cfg = LedgerConfig {
        key_file: Some(key_file),
        checkpoint_interval_ms: 3_600_000,
        ..LedgerConfig::default()
    };
    (signer, cfg)
}

/// Anchors version 1 of Patients `p0`..`p{n-1}` (each `{}`); their leaf indices.
async fn anchor_patients(ledger: &Arc<Ledger>, n: usize) -> Vec<u64> {
    let mut leaves = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("p{i}");
        let leaf = ledger
            .anchor(
                EntryType::ResourceVersion,
                b"{}",
                Some(("Patient", &id, Some("1"))),
            )
            .await
            .unwrap();
        leaves.push(leaf);
    }
    leaves
}

/// `ledger.mirror = false` writes no mirror; turned on later, the mirror is written whole from the
/// store at start (nothing new to sign), and it verifies as a complete log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_can_be_off_and_catches_up_when_turned_on() {
    let dir = temp_dir("mirror");
    let (signer, cfg) = keyed(&dir);
    let off = LedgerConfig {
        mirror: false,
        ..cfg
    };
    let ledger = Ledger::open(&off, &dir).unwrap();
    anchor_patients(&ledger, 300).await;
    ledger.sign_pending().unwrap();
    assert_eq!(ledger.checkpoint().unwrap().checkpoint.size, 301);
    let root = dir.join(MIRROR_DIR);
    assert!(!root.join("checkpoint").exists());
    drop(ledger);
    std::thread::sleep(Duration::from_millis(100));

    let on = LedgerConfig {
        mirror: true,
        ..off
    };
    let ledger = Ledger::open(&on, &dir).unwrap();
    let cp = ledger.checkpoint().unwrap();
    assert_eq!(cp.checkpoint.size, 301);
    assert_eq!(
        std::fs::read_to_string(root.join("checkpoint")).unwrap(),
        cp.note
    );
    assert_eq!(mirror::exported_size(&root), 301);
    assert_eq!(std::fs::read(root.join("tile/0/000")).unwrap().len(), 8192);
    assert_eq!(
        std::fs::read(root.join("tile/0/001.p/45")).unwrap().len(),
        45 * 32
    );
    let report = verify::verify(
        &verify::DirSource { root: root.clone() },
        &signer.verifier(),
        None,
        &crate::progress::Silent,
    )
    .unwrap();
    assert_eq!(report.size, 301);
    drop(ledger);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_anchors_signs_and_refuses_to_sign_over_a_tampered_store() {
    let dir = temp_dir("ledger");
    let (signer, cfg) = keyed(&dir);
    let ledger = Ledger::open(&cfg, &dir).unwrap();
    let leaves = anchor_patients(&ledger, 10).await;
    // Leaf 0 is the key-event recording the signing key of a new log.
    assert_eq!(leaves, (1..11).collect::<Vec<_>>());
    let first = ledger.read(|s| s.entries(0, 1)).await.unwrap();
    assert_eq!(
        entry::Entry::decode(&first[0]).unwrap().kind,
        EntryType::KeyEvent
    );
    // The same version with the same content is anchored once.
    let again = ledger
        .anchor(
            EntryType::ResourceVersion,
            b"{}",
            Some(("Patient", "p3", Some("1"))),
        )
        .await
        .unwrap();
    assert_eq!(again, 4);
    ledger.sign_pending().unwrap();
    let cp = ledger.checkpoint().unwrap();
    assert_eq!(cp.checkpoint.size, 11);
    let text = signer.verifier().open(&cp.note).unwrap();
    assert_eq!(Checkpoint::parse(text).unwrap(), cp.checkpoint);
    // The mirror holds the checkpoint and its tiles.
    let mirror = dir.join(MIRROR_DIR);
    assert_eq!(
        std::fs::read_to_string(mirror.join("checkpoint")).unwrap(),
        cp.note
    );
    assert_eq!(
        std::fs::read(mirror.join("tile/0/000.p/11")).unwrap().len(),
        352
    );
    assert_eq!(
        std::fs::read(mirror.join("tile/entries/000.p/11"))
            .unwrap()
            .len(),
        484
    );

    // Someone rewrites an old entry in the store: the next checkpoint is refused.
    ledger
        .anchor(
            EntryType::ResourceVersion,
            b"{}",
            Some(("Patient", "late", Some("1"))),
        )
        .await
        .unwrap();
    {
        let conn = rusqlite::Connection::open(dir.join(STORE_FILE)).unwrap();
        let mut data: Vec<u8> = conn
            .query_row("SELECT data FROM entries WHERE idx = 3", [], |r| r.get(0))
            .unwrap();
        data[5] ^= 1;
        conn.execute("UPDATE entries SET data = ?1 WHERE idx = 3", [data])
            .unwrap();
    }
    assert!(ledger.sign_pending().is_err());
    assert!(!ledger.healthy());
    assert_eq!(ledger.checkpoint().unwrap().checkpoint.size, 11);
    drop(ledger);
    // And a restart refuses too: the store no longer matches its signed checkpoint.
    std::thread::sleep(Duration::from_millis(100));
    let err = Ledger::open(&cfg, &dir).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Erasing a resource the ledger has no entry of (or has already erased) is an error that appends
/// nothing: no key event claims an erasure that did not happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_nothing_is_an_error_and_appends_nothing() {
    let dir = temp_dir("erase-nothing");
    let (_, cfg) = keyed(&dir);
    let ledger = Ledger::open(&cfg, &dir).unwrap();
    anchor_patients(&ledger, 2).await;
    let size = ledger.size();
    let e = ledger.erase("Patient", "no-such-id").await.unwrap_err();
    assert!(matches!(e, LedgerError::NothingToErase(_)), "{e}");
    assert!(
        e.to_string().contains("no entry of Patient/no-such-id"),
        "{e}"
    );
    assert_eq!(
        ledger.size(),
        size,
        "an erasure of nothing appended an entry"
    );
    // A real erasure appends its key event; the same erasure again is one of nothing.
    let (erased, event) = ledger.erase("Patient", "p0").await.unwrap();
    assert_eq!(erased, [1]);
    assert_eq!(event, size);
    let size = ledger.size();
    let e = ledger.erase("Patient", "p0").await.unwrap_err();
    assert!(e.to_string().contains("already erased"), "{e}");
    assert_eq!(ledger.size(), size);
    drop(ledger);
    std::fs::remove_dir_all(&dir).ok();
}
