//! The ledger end to end, through the real binary in front of the real upstream: anchored writes with
//! leaf indices, checkpoints and proofs accepted by our verifier and by an independent Python one,
//! `$verify` catching an edit made directly in the upstream, receipts verified offline, GDPR erasure,
//! SIGKILL during concurrent writes losing nothing acknowledged, a full store refusing writes, and a
//! damaged store refusing to start.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anchorgate_e2e::{
    client, gateway_bin, python_verify, run, work_dir, Gateway, GatewayOptions, Upstream,
};
use serde_json::{json, Value};

const LEAF: &str = "x-anchorgate-leaf-index";

/// POSTs a resource; (status, leaf header, body).
fn create(base: &str, resource: &Value, prefer: Option<&str>) -> (u16, Option<String>, Value) {
    let mut req = client()
        .post(format!(
            "{base}/{}",
            resource["resourceType"].as_str().unwrap()
        ))
        .header("content-type", "application/fhir+json")
        .body(resource.to_string());
    if let Some(p) = prefer {
        req = req.header("prefer", p);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    let leaf = r
        .headers()
        .get(LEAF)
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().unwrap();
    (
        status,
        leaf,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn location_id(headers: &reqwest::header::HeaderMap) -> String {
    let loc = headers["location"].to_str().unwrap();
    loc.split("/Patient/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// `$verify`'s result code and its Parameters.
fn verify(base: &str, path: &str) -> (String, Value) {
    let p: Value = client()
        .get(format!("{base}/{path}/$verify"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let result = p["parameter"]
        .as_array()
        .unwrap_or_else(|| panic!("{p}"))
        .iter()
        .find(|x| x["name"] == "result")
        .unwrap()["valueCode"]
        .as_str()
        .unwrap()
        .to_owned();
    (result, p)
}

fn param<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {p}"))
}

/// Waits until the published checkpoint covers `size` entries.
fn wait_for_checkpoint(gw: &Gateway, size: u64) -> String {
    let start = Instant::now();
    loop {
        let note = client()
            .get(format!("{}/ledger/checkpoint", gw.root()))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let have: u64 = note
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        if have >= size {
            return note;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "checkpoint stuck at {have} < {size}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `anchorgate ledger verify`.
fn ledger_verify(args: &[&str], key: &str) -> (i32, String) {
    run(Command::new(gateway_bin())
        .args(["ledger", "verify", "--key", key])
        .args(args))
}

#[test]
fn writes_are_anchored_proved_and_tampering_in_the_ehr_is_detected() {
    let up = Upstream::shared();
    let gw = Gateway::start(&up.base);
    let base = &gw.base;
    let mut leaves = Vec::new();

    // Create, answered with the stored resource. Its URL under the gateway's base reaches the upstream
    // under the upstream's base; the anchored form is independent of either (CANONICAL.md step 0).
    let (s, leaf, p1) = create(
        base,
        &json!({"resourceType": "Patient", "name": [{"family": "Anchored"}],
                "telecom": [{"system": "url", "value": format!("{base}/Basic/card")}]}),
        None,
    );
    assert_eq!(s, 201);
    leaves.push(leaf.unwrap().parse::<u64>().unwrap());
    let id1 = p1["id"].as_str().unwrap().to_owned();

    // Create with return=minimal: no body, so the gateway reads the stored version back.
    let r = client()
        .post(format!("{base}/Patient"))
        .header("content-type", "application/fhir+json")
        .header("prefer", "return=minimal")
        .body(json!({"resourceType": "Patient", "name": [{"family": "Minimal"}]}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    leaves.push(r.headers()[LEAF].to_str().unwrap().parse().unwrap());
    let id2 = location_id(r.headers());

    // Update and JSON Patch each anchor their new version.
    let r = client()
        .put(format!("{base}/Patient/{id2}"))
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Patient", "id": id2, "name": [{"family": "Updated"}]})
                .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    leaves.push(r.headers()[LEAF].to_str().unwrap().parse().unwrap());
    let r = client()
        .patch(format!("{base}/Patient/{id2}"))
        .header("content-type", "application/json-patch+json")
        .body(json!([{"op": "add", "path": "/gender", "value": "female"}]).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    leaves.push(r.headers()[LEAF].to_str().unwrap().parse().unwrap());

    // Operators see the ledger's throughput and batching in the metrics.
    let metrics = gw.metrics_text();
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    let (entries, batches) = (
        gauge("anchorgate_ledger_entries_committed"),
        gauge("anchorgate_ledger_batches_committed"),
    );
    assert!(entries >= leaves.len() as u64, "{entries} entries");
    assert!((1..=entries).contains(&batches), "{batches} batches");

    // A transaction: one leaf per entry that made a version or a deletion, '-' for the read.
    let doomed = create(
        base,
        &json!({"resourceType": "Patient", "name": [{"family": "Doomed"}]}),
        None,
    );
    leaves.push(doomed.1.unwrap().parse().unwrap());
    let doomed_id = doomed.2["id"].as_str().unwrap().to_owned();
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6f1c1a2e-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Patient", "name": [{"family": "InTx"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "urn:uuid:6f1c1a2e-0000-4000-8000-000000000001"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "DELETE", "url": format!("Patient/{doomed_id}")}},
        {"request": {"method": "GET", "url": "Patient?_count=1"}}
    ]});
    let r = client()
        .post(base.to_string())
        .header("content-type", "application/fhir+json")
        .body(tx.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let header = r.headers()[LEAF].to_str().unwrap().to_owned();
    let bundle: Value = r.json().unwrap();
    let items: Vec<&str> = header.split(',').collect();
    assert_eq!(items.len(), 4, "{header}");
    assert_eq!(items[3], "-");
    for (i, item) in items[..3].iter().enumerate() {
        let leaf: u64 = item.parse().unwrap();
        leaves.push(leaf);
        let ext = &bundle["entry"][i]["response"]["extension"][0];
        assert_eq!(
            ext["url"],
            "https://anchorgate.dev/fhir/StructureDefinition/ledger-leaf-index"
        );
        assert_eq!(ext["valueUnsignedInt"], leaf);
    }
    // Conditional writes: a conditional update that creates, a conditional create that finds it (the
    // same version, so the same leaf), and a conditional delete (a tombstone per deleted resource).
    let cond = format!("Cond{}", std::process::id());
    let r = client()
        .put(format!("{base}/Patient?family={cond}"))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "name": [{"family": cond}]}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let cond_leaf: u64 = r.headers()[LEAF].to_str().unwrap().parse().unwrap();
    let cond_id = location_id(r.headers());
    leaves.push(cond_leaf);
    let r = client()
        .post(format!("{base}/Patient"))
        .header("content-type", "application/fhir+json")
        .header("if-none-exist", format!("family={cond}"))
        .body(json!({"resourceType": "Patient", "name": [{"family": cond}]}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[LEAF].to_str().unwrap(), cond_leaf.to_string());
    let r = client()
        .delete(format!("{base}/Patient?family={cond}"))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    leaves.push(r.headers()[LEAF].to_str().unwrap().parse().unwrap());
    assert_eq!(verify(base, &format!("Patient/{cond_id}")).0, "deleted");

    // Every anchored version has its own leaf, in order.
    let mut sorted = leaves.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, leaves, "leaves are distinct and increasing");

    // $verify: intact, then tampered once the upstream is edited behind the gateway's back.
    assert_eq!(verify(base, &format!("Patient/{id1}")).0, "intact");
    let (_, p) = verify(base, &format!("Patient/{id2}"));
    assert_eq!(param(&p, "leafIndex")["valueString"], leaves[3].to_string());
    let direct = client()
        .put(format!("{}/Patient/{id1}", up.base))
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Patient", "id": id1, "name": [{"family": "Forged"}]})
                .to_string(),
        )
        .send()
        .unwrap();
    assert!(direct.status().is_success());
    let (result, p) = verify(base, &format!("Patient/{id1}"));
    assert_eq!(result, "tampered", "{p}");
    // The anchored version itself is still intact in the EHR's history; the untouched one too.
    assert_eq!(
        verify(base, &format!("Patient/{id1}/_history/1")).0,
        "intact"
    );
    assert_eq!(verify(base, &format!("Patient/{id2}")).0, "intact");
    // Never written through the gateway: unanchored. Deleted through it: deleted.
    let (_, _, stranger) = create(
        &up.base,
        &json!({"resourceType": "Patient", "name": [{"family": "Stranger"}]}),
        None,
    );
    assert_eq!(
        verify(
            base,
            &format!("Patient/{}", stranger["id"].as_str().unwrap())
        )
        .0,
        "unanchored"
    );
    assert_eq!(verify(base, &format!("Patient/{doomed_id}")).0, "deleted");

    // The signed checkpoint, every tile and the proofs verify, with our tool and an independent one.
    let last = *leaves.iter().max().unwrap();
    wait_for_checkpoint(&gw, last + 1);
    let url = format!("{}/ledger", gw.root());
    let state = work_dir("ledger-state").join("state");
    let (code, out) = ledger_verify(
        &["--url", &url, "--state", state.to_str().unwrap()],
        &gw.verifier,
    );
    assert_eq!(code, 0, "{out}");
    let mirror = gw.data_dir.join("ledger/log");
    let (code, out) = ledger_verify(&["--dir", mirror.to_str().unwrap()], &gw.verifier);
    assert_eq!(code, 0, "{out}");
    // A wrong key is refused.
    let other = "other.example/log+0b89325e+ARVMNG4fxvXSo56r0V5k3L7fE4cYg9ova9tjNDKvtto+";
    assert_ne!(ledger_verify(&["--url", &url], other).0, 0);
    for args in [
        vec!["log", "--url", &url, "--key", &gw.verifier],
        vec![
            "log",
            "--dir",
            mirror.to_str().unwrap(),
            "--key",
            &gw.verifier,
        ],
        vec!["proofs", "--url", &url, "--key", &gw.verifier],
    ] {
        let (code, out) = python_verify(&args);
        assert_eq!(code, 0, "python {args:?}: {out}");
    }

    // A receipt for version 1 of the first patient verifies offline against that version.
    let dir = work_dir("ledger-receipt");
    let receipt = client()
        .get(format!("{base}/Patient/{id1}/_history/1/$receipt"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let v1 = client()
        .get(format!("{base}/Patient/{id1}/_history/1"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    std::fs::write(dir.join("receipt.json"), &receipt).unwrap();
    std::fs::write(dir.join("v1.json"), &v1).unwrap();
    std::fs::write(dir.join("forged.json"), v1.replace("Anchored", "Forged")).unwrap();
    let r = dir.join("receipt.json");
    assert!(v1.contains(&format!("{base}/Basic/card")), "{v1}");
    let check = |resource: &str| {
        python_verify(&[
            "receipt",
            "--receipt",
            r.to_str().unwrap(),
            "--resource",
            dir.join(resource).to_str().unwrap(),
            "--key",
            &gw.verifier,
            "--base",
            base,
        ])
    };
    let (code, out) = check("v1.json");
    assert_eq!(code, 0, "{out}");
    let (code, out) = check("forged.json");
    assert_eq!(code, 1, "a forged version must not verify: {out}");

    // The ledger holds no personal data: the family names written are nowhere in the tiles.
    for entry in walk(&mirror) {
        let bytes = std::fs::read(&entry).unwrap();
        for name in [&b"Anchored"[..], b"Minimal", b"Updated", b"InTx", b"Doomed"] {
            assert!(
                !bytes.windows(name.len()).any(|w| w == name),
                "{} holds PHI",
                entry.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn erasure_unlinks_a_resource_and_keeps_the_log_valid() {
    let up = Upstream::shared();
    let mut gw = Gateway::start(&up.base);
    let (_, _, p) = create(
        &gw.base,
        &json!({"resourceType": "Patient", "name": [{"family": "Erase"}]}),
        None,
    );
    let id = p["id"].as_str().unwrap().to_owned();
    let (_, _, keep) = create(
        &gw.base,
        &json!({"resourceType": "Patient", "name": [{"family": "Keep"}]}),
        None,
    );
    assert_eq!(verify(&gw.base, &format!("Patient/{id}")).0, "intact");
    let reuse = gw.reuse();
    // Erasure needs the ledger to itself: while the gateway runs, it is refused.
    let verifier = reuse.as_ref().unwrap().2.clone();
    let erase = |gw: &Gateway, gw_running: bool| {
        let (code, out, err) = gw.command(&["ledger", "erase", "--type", "Patient", "--id", &id]);
        let text = format!("{out}{err}");
        if gw_running {
            assert_eq!(code, Some(2), "{text}");
            assert!(text.contains("in use"), "{text}");
        } else {
            assert_eq!(code, Some(0), "{text}");
        }
        text
    };
    erase(&gw, true);
    assert!(gw.terminate(Duration::from_secs(20)).is_some());
    let report: Value = serde_json::from_str(erase(&gw, false).lines().next().unwrap()).unwrap();
    assert_eq!(
        report["erased_leaves"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    let gw = Gateway::start_with(
        &up.base,
        GatewayOptions {
            reuse,
            ..Default::default()
        },
    );
    let (result, p) = verify(&gw.base, &format!("Patient/{id}"));
    assert_eq!(result, "unanchored", "{p}");
    assert!(param(&p, "result")["part"][0]["valueString"]
        .as_str()
        .unwrap()
        .contains("erased"));
    assert_eq!(
        verify(
            &gw.base,
            &format!("Patient/{}", keep["id"].as_str().unwrap())
        )
        .0,
        "intact"
    );
    // The tree and its proofs are still valid, including the key-event entry.
    let (code, out) = ledger_verify(&["--url", &format!("{}/ledger", gw.root())], &verifier);
    assert_eq!(code, 0, "{out}");
    let receipt = client()
        .get(format!("{}/Patient/{id}/_history/1/$receipt", gw.base))
        .send()
        .unwrap();
    assert_eq!(receipt.status(), 404);
}

#[test]
fn sigkill_during_concurrent_writes_loses_nothing_acknowledged() {
    let up = Upstream::shared();
    let mut gw = Gateway::start(&up.base);
    let base = gw.base.clone();
    // A checkpoint remembered before the crash: the restarted log must extend it.
    create(
        &base,
        &json!({"resourceType": "Patient", "name": [{"family": "Before"}]}),
        None,
    );
    wait_for_checkpoint(&gw, 1);
    let state = work_dir("ledger-kill").join("state");
    let url = format!("{}/ledger", gw.root());
    assert_eq!(
        ledger_verify(
            &["--url", &url, "--state", state.to_str().unwrap()],
            &gw.verifier
        )
        .0,
        0
    );

    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (acked, stop, base) = (acked.clone(), stop.clone(), base.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let body = json!({"resourceType": "Patient", "name": [{"family": format!("Kill{w}x{i}")}]});
                    let Ok(r) = client()
                        .post(format!("{base}/Patient"))
                        .header("content-type", "application/fhir+json")
                        .body(body.to_string())
                        .send()
                    else {
                        continue;
                    };
                    if r.status().is_success() {
                        let leaf = r.headers().get(LEAF).map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
                        let id = r.json::<Value>().unwrap()["id"].as_str().unwrap().to_owned();
                        acked.lock().unwrap().push((id, leaf.expect("a 2xx write carries its leaf")));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    gw.kill9();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "only {} writes before the kill",
        acked.len()
    );

    let gw = Gateway::start_with(
        &up.base,
        GatewayOptions {
            reuse: gw.reuse(),
            ..Default::default()
        },
    );
    // Every acknowledged write is in the log, at its leaf, and verifies.
    for (id, leaf) in &acked {
        let (result, p) = verify(&gw.base, &format!("Patient/{id}"));
        assert_eq!(result, "intact", "{id}: {p}");
        assert_eq!(param(&p, "leafIndex")["valueString"], leaf.to_string());
    }
    // The tree extends the checkpoint remembered before the crash.
    let max = acked.iter().map(|a| a.1).max().unwrap();
    wait_for_checkpoint(&gw, max + 1);
    let (code, out) = ledger_verify(
        &[
            "--url",
            &format!("{}/ledger", gw.root()),
            "--state",
            state.to_str().unwrap(),
        ],
        &gw.verifier,
    );
    assert_eq!(code, 0, "{out}");
    // And the gateway keeps working.
    let (s, leaf, _) = create(
        &gw.base,
        &json!({"resourceType": "Patient", "name": [{"family": "After"}]}),
        None,
    );
    assert_eq!(s, 201);
    assert!(leaf.unwrap().parse::<u64>().unwrap() > max);
}

#[test]
fn a_full_store_refuses_writes_and_a_damaged_store_refuses_to_start() {
    let up = Upstream::shared();
    let mut gw = Gateway::start_with(
        &up.base,
        GatewayOptions {
            config_toml: Some("[ledger]\nmax_store_bytes = 131072\n".into()),
            ..Default::default()
        },
    );
    let tag = format!("Full{}", std::process::id());
    let mut refused_at = None;
    for i in 0..5000 {
        let family = format!("{tag}x{i}");
        let r = client()
            .post(format!("{}/Patient", gw.base))
            .header("content-type", "application/fhir+json")
            .body(json!({"resourceType": "Patient", "name": [{"family": family}]}).to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let leaf = r.headers().get(LEAF).is_some();
        let failed = r
            .headers()
            .get("x-anchorgate-anchor")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = r.text().unwrap();
        match status {
            201 => assert!(
                leaf || failed.as_deref() == Some("failed"),
                "a 201 is anchored or says it is not"
            ),
            503 => {
                let oo: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(oo["issue"][0]["code"], "transient", "{oo}");
                assert!(body.contains("full"), "{body}");
                eprintln!("store full after {i} writes");
                refused_at = Some(family);
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let refused = refused_at.expect("the store never filled");
    // The refused write never reached the EHR.
    let found: Value = client()
        .get(format!("{}/Patient?family={refused}", up.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(found["total"], 0, "{found}");
    let ready = client()
        .get(format!("{}/readyz", gw.root()))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(gw.terminate(Duration::from_secs(20)).is_some());

    // Damage the stopped store: the gateway refuses to start, says why, and truncates nothing.
    let (data, key, _) = gw.reuse().unwrap();
    let db = data.join("ledger/ledger.sqlite");
    let before = std::fs::metadata(&db).unwrap().len();
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    let n = bytes.len();
    for b in &mut bytes[n - 2 * page..n - page] {
        *b = 0xA5;
    }
    // Also the page after the header: the schema's first table.
    for b in &mut bytes[page + 100..2 * page] {
        *b = 0x5A;
    }
    std::fs::write(&db, &bytes).unwrap();
    let out = Command::new(gateway_bin())
        .args(["serve", "--upstream", &up.base, "--listen", "127.0.0.1:1"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--ledger-key-file")
        .arg(&key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("corrupt") || err.contains("malformed"),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        before,
        "nothing truncated"
    );
}

#[test]
fn the_ledger_needs_a_key_unless_an_ephemeral_one_is_asked_for() {
    let up = Upstream::shared();
    let dir = work_dir("ledger-nokey");
    // No key: refused before binding, with the way out named.
    let out = Command::new(gateway_bin())
        .args(["serve", "--upstream", &up.base, "--listen", "127.0.0.1:1"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("ANCHORGATE_LEDGER_KEY")
        .env_remove("ANCHORGATE_LEDGER_KEY_FILE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no ledger signing key") && err.contains("anchorgate keygen"),
        "{err}"
    );
    // keygen never overwrites a key, and writes it owner-only.
    let key = dir.join("k");
    let make = || {
        Command::new(gateway_bin())
            .args(["keygen", "--origin", "x.example/log", "--out"])
            .arg(&key)
            .output()
            .unwrap()
    };
    let first = make();
    assert!(first.status.success());
    assert!(String::from_utf8_lossy(&first.stdout).starts_with("x.example/log+"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(make().status.code(), Some(2));
    // Ephemeral: it runs, and says so loudly.
    let gw = Gateway::start_with(
        &up.base,
        GatewayOptions {
            args: vec!["--ephemeral-ledger-key".into()],
            ..Default::default()
        },
    );
    let (s, leaf, _) = create(
        &gw.base,
        &json!({"resourceType": "Patient", "name": [{"family": "Dev"}]}),
        None,
    );
    assert_eq!(s, 201);
    assert!(leaf.is_some());
    assert!(
        gw.log_text().contains("EPHEMERAL DEVELOPMENT KEY"),
        "{}",
        gw.log_text()
    );
}

#[test]
fn the_independent_verifier_passes_its_self_test() {
    let (code, out) = python_verify(&["selftest"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn ledger_endpoints_answer_bad_input_with_an_outcome() {
    let up = Upstream::shared();
    let gw = Gateway::start(&up.base);
    create(
        &gw.base,
        &json!({"resourceType": "Patient", "name": [{"family": "Probe"}]}),
        None,
    );
    wait_for_checkpoint(&gw, 1);
    let root = gw.root();
    let long = "9".repeat(40);
    let cases: Vec<(reqwest::Method, String, u16)> = vec![
        (
            reqwest::Method::GET,
            format!("{root}/ledger/tile/0/x000/001"),
            400,
        ),
        (
            reqwest::Method::GET,
            format!("{root}/ledger/tile/0/001.p/0"),
            400,
        ),
        (
            reqwest::Method::GET,
            format!("{root}/ledger/tile/9/000"),
            400,
        ),
        // The client resolves the dot segments: the path leaves /ledger/ and nothing is served.
        (
            reqwest::Method::GET,
            format!("{root}/ledger/tile/%2e%2e/%2e%2e/etc/passwd"),
            404,
        ),
        (
            reqwest::Method::GET,
            format!("{root}/ledger/tile/0/999"),
            404,
        ),
        (
            reqwest::Method::GET,
            format!("{root}/ledger/proof/inclusion?index=abc"),
            400,
        ),
        (
            reqwest::Method::GET,
            format!("{root}/ledger/proof/inclusion?index={long}"),
            400,
        ),
        (
            reqwest::Method::GET,
            format!("{root}/ledger/proof/inclusion"),
            400,
        ),
        (
            reqwest::Method::GET,
            format!("{root}/ledger/proof/inclusion?index=5&size=1"),
            400,
        ),
        (
            reqwest::Method::GET,
            format!("{root}/ledger/proof/inclusion?index=0&size=99999999"),
            400,
        ),
        (
            reqwest::Method::GET,
            format!("{root}/ledger/proof/consistency?new=1"),
            400,
        ),
        (
            reqwest::Method::GET,
            format!("{root}/ledger/proof/consistency?old=9&new=1"),
            400,
        ),
        (
            reqwest::Method::POST,
            format!("{root}/ledger/checkpoint"),
            405,
        ),
        (reqwest::Method::GET, format!("{root}/ledger/nothing"), 404),
        (
            reqwest::Method::POST,
            format!("{}/Patient/x/$verify", gw.base),
            405,
        ),
        (
            reqwest::Method::GET,
            format!("{}/Patient/never/_history/1/$receipt", gw.base),
            404,
        ),
    ];
    for (method, url, want) in cases {
        let r = client().request(method.clone(), &url).send().unwrap();
        let status = r.status().as_u16();
        let body = r.text().unwrap();
        assert_eq!(status, want, "{method} {url}: {body}");
        let oo: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{url}: {body}"));
        assert_eq!(oo["resourceType"], "OperationOutcome", "{url}: {body}");
    }
    // The gateway is still healthy and anchoring.
    let (s, leaf, _) = create(
        &gw.base,
        &json!({"resourceType": "Patient", "name": [{"family": "Probe2"}]}),
        None,
    );
    assert_eq!(s, 201);
    assert!(leaf.is_some());
}
