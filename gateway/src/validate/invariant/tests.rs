//! Tests of invariant compilation (the inventory of skipped ones), the absent-roots shortcut and the
//! native checks' agreement with the engine.

use serde_json::{json, Value};

use super::native::Native;
use super::{How, Scope};
use crate::validate::Validator;

/// Every R4 core invariant the engine does not check, with why. A change here is deliberate.
const SKIPPED: &[(&str, &str)] = &[
    (
        "ctm-1",
        "CareTeam.participant: resolve() needs the referenced resource, which a gateway does not fetch",
    ),
    (
        "txt-1",
        "Narrative.div: htmlChecks(); the walker checks the XHTML natively (xhtml.rs)",
    ),
    (
        "txt-2",
        "Narrative.div: htmlChecks(); the walker checks the XHTML natively (xhtml.rs)",
    ),
];

#[test]
fn inventory_of_r4_core_invariants() {
    let table = &Validator::r4().model.invariants;
    let (mut native, mut engine, mut skipped) = (0, 0, Vec::new());
    for inv in &table.list {
        match &inv.how {
            How::Native(_) => native += 1,
            How::Engine(_) => engine += 1,
            How::Skipped(why) => skipped.push((inv.key.to_string(), why.clone())),
        }
    }
    eprintln!(
        "R4 invariants: {} distinct (+ ele-1, ext-1 in the walker): {native} native, {engine} engine, {} skipped",
        table.list.len(),
        skipped.len()
    );
    for (k, why) in &skipped {
        eprintln!("  skipped {k}: {why}");
    }
    let keys: Vec<&str> = skipped.iter().map(|(k, _)| k.as_str()).collect();
    let expected: Vec<&str> = SKIPPED.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, expected);
}

/// R4's `dom-3` errors in the engine as soon as a contained resource exists (`as(canonical)` on a
/// collection), so the native check is compared with its `reference` part, which is what decides
/// the cases below (no canonical/uri/url values, no `#` references).
const DOM3_REFERENCES: &str =
    "contained.where(('#'+id in %resource.descendants().reference).not()).empty()";

/// Evaluates an invariant by key with the engine, bypassing any native check.
fn engine(key: &str, focus: &Value, resource: &Value, root: &Value) -> bool {
    let table = &Validator::r4().model.invariants;
    let inv = table.list.iter().find(|i| &*i.key == key).unwrap();
    engine_expr(&inv.expression, focus, resource, root)
}

/// Evaluates an expression with the engine.
fn engine_expr(expression: &str, focus: &Value, resource: &Value, root: &Value) -> bool {
    let parser = rh_fhirpath::FhirPathParser::new();
    let env = super::Env {
        resource: true,
        root_resource: true,
        context: false,
    };
    let compiled = super::Compiled {
        expr: parser.parse(expression).unwrap(),
        hoisted: Vec::new(),
        roots: None,
        holds_when_absent: None,
        env,
        hoisted_env: env,
    };
    compiled.eval(focus, focus, Some(Scope { resource, root }))
}

fn native(n: Native, focus: &Value, resource: &Value, root: &Value) -> bool {
    n.holds(focus, Scope { resource, root })
}

/// Native checks agree with the engine running R4's expression on cases both can decide.
#[test]
fn native_checks_agree_with_the_engine() {
    let contained = |refs: Value| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
               "contained": [{"resourceType": "Patient", "id": "p1"}], "subject": refs})
    };
    // dom-3: referenced, not referenced, referenced from inside another contained resource.
    for r in [
        contained(json!({"reference": "#p1"})),
        contained(json!({"reference": "#p2"})),
        contained(json!({"reference": "Patient/p1"})),
        json!({"resourceType": "Observation", "contained": [
            {"resourceType": "Patient", "id": "p1"},
            {"resourceType": "Group", "id": "g", "member": [{"entity": {"reference": "#p1"}}]}],
            "subject": {"reference": "#g"}}),
        json!({"resourceType": "Patient"}),
    ] {
        assert_eq!(
            native(Native::Dom3, &r, &r, &r),
            engine_expr(DOM3_REFERENCES, &r, &r, &r),
            "dom-3 on {r}"
        );
    }
    // ref-1: found, not found, not local, no reference, in a contained resource (root = container).
    let root = json!({"resourceType": "Observation", "contained": [
        {"resourceType": "Patient", "id": "p1"}, {"resourceType": "Practitioner", "id": "d"}]});
    for reference in [
        json!({"reference": "#p1"}),
        json!({"reference": "#nope"}),
        json!({"reference": "Patient/p1"}),
        json!({"display": "x"}),
    ] {
        let inner = &root["contained"][1];
        for resource in [&root, inner] {
            assert_eq!(
                native(Native::Ref1, &reference, resource, &root),
                engine("ref-1", &reference, resource, &root),
                "ref-1 on {reference}"
            );
        }
    }
    // bdl-7: distinct, repeated fullUrl, repeated but different versions, a history, no fullUrls.
    let entry = |url: &str, version: Option<&str>| {
        let mut r = json!({"resourceType": "Patient"});
        if let Some(v) = version {
            r["meta"] = json!({"versionId": v});
        }
        json!({"fullUrl": url, "resource": r})
    };
    for (kind, entries) in [
        (
            "collection",
            vec![entry("urn:uuid:a", None), entry("urn:uuid:b", None)],
        ),
        (
            "collection",
            vec![entry("urn:uuid:a", None), entry("urn:uuid:a", None)],
        ),
        (
            "collection",
            vec![
                entry("urn:uuid:a", Some("1")),
                entry("urn:uuid:a", Some("2")),
            ],
        ),
        (
            "history",
            vec![entry("urn:uuid:a", None), entry("urn:uuid:a", None)],
        ),
        (
            "batch",
            vec![json!({"request": {"method": "GET", "url": "Patient"}})],
        ),
    ] {
        let b = json!({"resourceType": "Bundle", "type": kind, "entry": entries});
        assert_eq!(
            native(Native::Bdl7, &b, &b, &b),
            engine("bdl-7", &b, &b, &b),
            "bdl-7 on {b}"
        );
    }
    // The Bundle-wide rules, over Bundles of every type with entries of every shape.
    let shapes = [
        json!({"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Composition"}}),
        json!({"resource": {"resourceType": "MessageHeader"}, "request": {"method": "GET", "url": "x"}}),
        json!({"response": {"status": "200"}, "search": {"mode": "match"}}),
        json!({"resource": {"resourceType": "Patient"}, "response": {"status": "201"}}),
        json!({"fullUrl": "urn:uuid:b"}),
    ];
    for kind in [
        "document",
        "message",
        "transaction",
        "batch",
        "history",
        "searchset",
        "collection",
        "transaction-response",
        "batch-response",
    ] {
        for pick in [
            vec![],
            vec![0],
            vec![1],
            vec![2],
            vec![3],
            vec![0, 1],
            vec![1, 0],
            vec![2, 3],
            vec![0, 3],
            vec![4],
            vec![3, 4],
        ] {
            let entries: Vec<Value> = pick.iter().map(|&i| shapes[i].clone()).collect();
            let b = json!({"resourceType": "Bundle", "type": kind, "entry": entries});
            for key in ["bdl-2", "bdl-3", "bdl-4", "bdl-11", "bdl-12"] {
                let n = Native::for_key(key).unwrap();
                assert_eq!(
                    native(n, &b, &b, &b),
                    engine(key, &b, &b, &b),
                    "{key} on {b}"
                );
            }
            for e in &entries {
                let n = Native::for_key("bdl-5").unwrap();
                assert_eq!(
                    native(n, e, &b, &b),
                    engine("bdl-5", e, &b, &b),
                    "bdl-5 on {e}"
                );
            }
        }
    }
    // obs-7: no value, component repeating the code, distinct component, component without code.
    let loinc = json!({"system": "http://loinc.org", "code": "85354-9"});
    let other = json!({"system": "http://loinc.org", "code": "8480-6"});
    for obs in [
        json!({"resourceType": "Observation", "code": {"coding": [loinc]},
               "component": [{"code": {"coding": [loinc]}}]}),
        json!({"resourceType": "Observation", "code": {"coding": [loinc]}, "valueString": "x",
               "component": [{"code": {"coding": [loinc]}}]}),
        json!({"resourceType": "Observation", "code": {"coding": [loinc]}, "valueString": "x",
               "component": [{"code": {"coding": [other]}}, {"code": {"text": "t"}}]}),
        json!({"resourceType": "Observation", "code": {"text": "t"}, "valueBoolean": false}),
    ] {
        assert_eq!(
            native(Native::Obs7, &obs, &obs, &obs),
            engine("obs-7", &obs, &obs, &obs),
            "obs-7 on {obs}"
        );
    }
}

/// Where the native checks deliberately accept what R4's expression rejects, as the HL7 validator
/// does (HL7 case binary-ref-internal: a contained Binary shown by the narrative).
#[test]
fn native_checks_documented_leniency() {
    let r = json!({"resourceType": "Composition", "contained": [{"resourceType": "Binary", "id": "img"}],
        "text": {"status": "generated",
                 "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><img src=\"#img\"/></div>"}});
    assert!(native(Native::Dom3, &r, &r, &r));
    assert!(!engine_expr(DOM3_REFERENCES, &r, &r, &r));
    let container =
        json!({"resourceType": "Patient", "contained": [{"resourceType": "Group", "id": "g"}]});
    let to_container = json!({"reference": "#"});
    assert!(native(
        Native::Ref1,
        &to_container,
        &container["contained"][0],
        &container
    ));
    // The engine agrees: `'#'.substring(1)` is empty there, and an empty result passes.
    assert!(engine(
        "ref-1",
        &to_container,
        &container["contained"][0],
        &container
    ));
}

/// Every JSON object in `v`, depth first.
fn objects<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Object(o) => {
            out.push(v);
            o.values().for_each(|x| objects(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| objects(x, out)),
        _ => {}
    }
}

/// The absent-roots shortcut and the projected focus give the engine's verdict on the whole focus, for
/// every engine-checked invariant on every object of a few varied resources.
#[test]
fn shortcut_and_projection_agree_with_full_evaluation() {
    let samples = [
        json!({"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
               "valueQuantity": {"value": 37.5, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"},
               "referenceRange": [{"low": {"value": 1}, "text": "x"}], "effectivePeriod": {"start": "2020-01-02", "end": "2020-01-01"},
               "component": [{"code": {"text": "c"}, "dataAbsentReason": {"text": "n/a"}, "valueString": "v"}]}),
        json!({"resourceType": "Patient", "contact": [{"relationship": [{"text": "x"}]}, {"name": {"family": "F"}}],
               "telecom": [{"value": "123"}, {"system": "phone", "value": "1"}],
               "photo": [{"data": "aGk="}], "link": [{"other": {"reference": "Patient/1"}, "type": "seealso"}]}),
        json!({"resourceType": "RiskAssessment", "status": "final", "subject": {"reference": "Patient/1"},
               "prediction": [{"probabilityDecimal": 120, "whenRange": {"low": {"value": 5}, "high": {"value": 3}}},
                              {"probabilityRange": {"low": {"value": 5, "unit": "%"}}}]}),
        json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order", "medicationCodeableConcept": {"text": "m"},
               "subject": {"reference": "Patient/1"},
               "dosageInstruction": [{"timing": {"repeat": {"duration": 1, "frequency": 2, "period": 1, "periodUnit": "d",
                                     "boundsDuration": {"value": 1, "code": "d", "system": "http://unitsofmeasure.org"}}},
                                     "doseAndRate": [{"doseQuantity": {"value": 1, "code": "mg"}}]}]}),
    ];
    let table = &Validator::r4().model.invariants;
    let mut compared = 0;
    for r in &samples {
        let mut objs = Vec::new();
        objects(r, &mut objs);
        let scope = Scope {
            resource: r,
            root: r,
        };
        for obj in objs {
            for inv in &table.list {
                let How::Engine(c) = &inv.how else { continue };
                if c.roots.is_none() {
                    continue;
                }
                assert_eq!(
                    c.holds(obj, scope, &|k, r| k.starts_with(r)),
                    c.eval(obj, obj, Some(scope)),
                    "{} on {obj}",
                    inv.key
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 1000, "{compared}");
}

/// Hoisting `%resource` paths out of the expression keeps the engine's verdict (sdf-8a on the
/// differential of StructureDefinitions of either kind, with paths that do and do not fit the type).
#[test]
fn hoisted_paths_agree_with_the_original_expression() {
    let table = &Validator::r4().model.invariants;
    let mut compared = 0;
    for kind in ["resource", "logical"] {
        for paths in [
            vec!["Patient", "Patient.name"],
            vec!["Patient"],
            vec!["Observation", "Observation.code"],
            vec!["Patient", "Observation.code"],
        ] {
            let elements: Vec<Value> = paths.iter().map(|p| json!({"path": p})).collect();
            let sd = json!({"resourceType": "StructureDefinition", "kind": kind, "type": "Patient",
                            "differential": {"element": elements}});
            let focus = &sd["differential"];
            let inv = table.list.iter().find(|i| &*i.key == "sdf-8a").unwrap();
            let How::Engine(c) = &inv.how else {
                panic!("sdf-8a")
            };
            assert!(!c.hoisted.is_empty(), "sdf-8a hoists %resource paths");
            let scope = Scope {
                resource: &sd,
                root: &sd,
            };
            assert_eq!(
                c.holds(focus, scope, &|_, _| false),
                engine("sdf-8a", focus, &sd, &sd),
                "sdf-8a on {sd}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 8);
}
