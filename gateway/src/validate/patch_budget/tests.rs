//! Tests of the patch budget: each limit refuses the blow-up it is for, before it is built, and real
//! patches pass.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::validate::patch::{apply_fhirpath_patch, apply_json_patch};
use crate::validate::Validator;

/// The red team's patch (issue 17 §4): an array copied into itself `n` times, each copy doubling it.
fn doubling(n: usize) -> Value {
    let mut ops = vec![
        json!({"op": "add", "path": "/extension", "value": [{"url": "http://x", "valueString": "0123456789"}]}),
    ];
    ops.extend((0..n).map(|_| json!({"op": "copy", "from": "/extension", "path": "/extension/-"})));
    Value::Array(ops)
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"})
}

fn too_costly(r: Result<(), PatchError>) -> String {
    match r {
        Err(PatchError::TooCostly(m)) => m,
        other => panic!("expected TooCostly, got {other:?}"),
    }
}

#[test]
fn measure_counts_compact_json() {
    let v = json!({"a": [1, "two", null, true, {"b": 1.50}], "c": false});
    let s = measure(&v);
    assert_eq!(s.bytes, serde_json::to_vec(&v).unwrap().len());
    assert_eq!((s.nodes, s.depth), (9, 3));
    assert_eq!(
        measure(&json!("x")),
        Size {
            bytes: 3,
            nodes: 1,
            depth: 0
        }
    );
}

#[test]
fn thirty_doublings_are_refused_before_they_are_built() {
    let mut doc = patient();
    let started = Instant::now();
    let m = too_costly(apply_json_patch(
        &mut doc,
        &doubling(30),
        PatchLimits::default(),
    ));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(m.contains("limits.max_"), "{m}");
    // The operation that would pass the limit was not applied: the document stays within it.
    let size = measure(&doc);
    assert!(size.bytes <= PatchLimits::default().max_bytes, "{size:?}");
    assert!(size.nodes <= PatchLimits::default().max_nodes, "{size:?}");
}

#[test]
fn each_limit_refuses_on_its_own() {
    let small = PatchLimits {
        max_bytes: 10_000,
        max_nodes: 1_000_000,
    };
    let m = too_costly(apply_json_patch(&mut patient(), &doubling(30), small));
    assert!(
        m.contains("larger than 10000 bytes (limits.max_request_body)"),
        "{m}"
    );
    let few = PatchLimits {
        max_bytes: 1 << 30,
        max_nodes: 500,
    };
    let m = too_costly(apply_json_patch(&mut patient(), &doubling(30), few));
    assert!(m.contains("more than 500 values (limits.max_nodes)"), "{m}");
    // A value added from the patch itself counts as much as a copy.
    let big = json!([{"op": "add", "path": "/text", "value": "x".repeat(20_000)}]);
    let m = too_costly(apply_json_patch(&mut patient(), &big, small));
    assert!(m.contains("operation 0"), "{m}");
}

#[test]
fn nesting_by_moves_is_refused_at_the_json_depth_limit() {
    // Three operations wrap `/b` in one more array without growing it: a deep result would exhaust
    // the stack of whatever walks it next.
    let mut ops = vec![json!({"op": "add", "path": "/b", "value": []})];
    for _ in 0..200 {
        ops.push(json!({"op": "add", "path": "/t", "value": []}));
        ops.push(json!({"op": "move", "from": "/b", "path": "/t/-"}));
        ops.push(json!({"op": "move", "from": "/t", "path": "/b"}));
    }
    let mut doc = patient();
    let m = too_costly(apply_json_patch(
        &mut doc,
        &Value::Array(ops),
        PatchLimits::default(),
    ));
    assert!(m.contains("nested deeper than 127 levels"), "{m}");
    assert!(measure(&doc).depth <= 127);
}

#[test]
fn copying_and_removing_over_and_over_runs_out_of_work() {
    // Nothing grows, but every pair copies the whole array: work, not size, is what stops it.
    let limits = PatchLimits {
        max_bytes: 1 << 30,
        max_nodes: 100_000,
    };
    let mut ops = vec![json!({"op": "add", "path": "/a", "value": vec![0; 20_000]})];
    for _ in 0..1_000 {
        ops.push(json!({"op": "copy", "from": "/a", "path": "/b"}));
        ops.push(json!({"op": "remove", "path": "/b"}));
    }
    let m = too_costly(apply_json_patch(&mut patient(), &Value::Array(ops), limits));
    assert!(m.contains("more work than the gateway allows"), "{m}");
}

#[test]
fn real_patches_pass_and_removals_give_room_back() {
    let limits = PatchLimits {
        max_bytes: 2_000,
        max_nodes: 1_000,
    };
    let mut doc = patient();
    let ops = json!([
        {"op": "add", "path": "/text", "value": "x".repeat(1_500)},
        {"op": "remove", "path": "/text"},
        {"op": "add", "path": "/text", "value": "y".repeat(1_500)},
        {"op": "replace", "path": "/text", "value": "z".repeat(1_500)},
        {"op": "copy", "from": "/birthDate", "path": "/deceasedDateTime"},
        {"op": "test", "path": "/id", "value": "p1"}
    ]);
    apply_json_patch(&mut doc, &ops, limits).unwrap();
    assert_eq!(doc["deceasedDateTime"], "1970-01-01");
    // A document already over the limits (the upstream's own) may be patched, but not grow.
    let mut big = json!({"resourceType": "Patient", "text": "w".repeat(5_000)});
    apply_json_patch(
        &mut big,
        &json!([{"op": "replace", "path": "/text", "value": "v"}]),
        limits,
    )
    .unwrap();
    let mut big = json!({"resourceType": "Patient", "text": "w".repeat(5_000)});
    let grow = json!([{"op": "add", "path": "/id", "value": "w".repeat(100)}]);
    too_costly(apply_json_patch(&mut big, &grow, limits));
}

/// A FHIRPath Patch of `n` operations of `kind` (`add` or `insert`) each putting one identifier.
fn identifiers(kind: &str, n: usize) -> Value {
    let op = |i: usize| {
        let (path, place) = match kind {
            "add" => (
                "Patient",
                json!({"name": "name", "valueString": "identifier"}),
            ),
            _ => (
                "Patient.identifier",
                json!({"name": "index", "valueInteger": 0}),
            ),
        };
        json!({"name": "operation", "part": [
            {"name": "type", "valueCode": kind},
            {"name": "path", "valueString": path},
            place,
            {"name": "value", "part": [{"name": "value", "valueString": format!("id-{i}")}]}]})
    };
    json!({"resourceType": "Parameters", "parameter": (0..n).map(op).collect::<Vec<_>>()})
}

#[test]
fn fhirpath_patches_are_bounded_too() {
    let model = Validator::r4().model();
    let limits = PatchLimits {
        max_bytes: 1 << 20,
        max_nodes: 300,
    };
    let mut doc = patient();
    let m = too_costly(apply_fhirpath_patch(
        model,
        &mut doc,
        &identifiers("add", 200),
        limits,
    ));
    assert!(
        m.starts_with("FHIRPath Patch operation") && m.contains("limits.max_nodes"),
        "{m}"
    );
    assert!(measure(&doc).nodes <= 300);
    // Inserting at the head of a list shifts all of it, and finding the list visits every item.
    let m = too_costly(apply_fhirpath_patch(
        model,
        &mut patient(),
        &identifiers("insert", 200),
        limits,
    ));
    assert!(m.contains("more work than the gateway allows"), "{m}");
    for kind in ["add", "insert"] {
        let mut doc = patient();
        apply_fhirpath_patch(
            model,
            &mut doc,
            &identifiers(kind, 200),
            PatchLimits::default(),
        )
        .unwrap();
        assert_eq!(doc["identifier"].as_array().map(Vec::len), Some(200));
    }
}
