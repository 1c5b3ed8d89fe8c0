//! Every scenario of the shared consent scenarios file (copied into `conformance/consent-scenarios/`)
//! and of this repository's extra scenarios, run at the engine level: principals become request facts,
//! fixtures resource facts.
//!
//! SMART scopes are the identity module's: a `forbidden` expectation is not checked here but by
//! `identity::scopes` (`scenario_lab_only_principal`) and, end to end, by the `consent_scenarios`
//! runner (`conformance/consent-scenarios/runner.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::*;
use crate::fhir::compartment::patient_ids;

/// The shared scenario set, the repository's one copy.
const SHARED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../conformance/consent-scenarios/scenarios.json"
);
const EXTRA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../conformance/consent-scenarios/extra.json"
);

/// 2025-06-15T12:00:00Z, the file's `now`.
const NOW: i64 = 1_749_988_800;

struct Suite {
    fixtures: Vec<Value>,
    principals: Value,
}

impl Suite {
    fn facts(&self, principal: &str, purpose: Option<&str>, action: ActionKind) -> RequestFacts {
        let p = &self.principals[principal];
        assert!(p.is_object(), "unknown principal {principal}");
        let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
        let fhir_user = s("fhirUser");
        // Group membership comes from the Group fixtures, as the gateway reads it from the upstream.
        let groups = self
            .fixtures
            .iter()
            .filter(|r| r["resourceType"] == "Group")
            .filter(|g| {
                g["member"].as_array().into_iter().flatten().any(|m| {
                    fhir_user.is_some() && m["entity"]["reference"].as_str() == fhir_user.as_deref()
                })
            })
            .map(|g| format!("Group/{}", g["id"].as_str().unwrap()))
            .collect();
        RequestFacts {
            principal: fhir_user
                .clone()
                .unwrap_or_else(|| format!("client/{}", s("client_id").unwrap())),
            fhir_user,
            organization: s("organization"),
            groups,
            purpose: purpose.map(str::to_owned),
            action,
            now: NOW,
            country: s("country"),
        }
    }

    fn by_path(&self, path: &str) -> &Value {
        let (t, id) = path.split_once('/').unwrap();
        self.fixtures
            .iter()
            .find(|r| r["resourceType"] == t && r["id"] == id)
            .unwrap_or_else(|| panic!("no fixture {path}"))
    }

    /// The fixtures a request returns: one resource for a read; for a search, the patient's resources of
    /// the type (or, with `_id`, the resources named); for `$everything`, all of the patient's resources.
    fn returned(&self, path: &str) -> (Vec<&Value>, bool) {
        if let Some((t, query)) = path.split_once('?') {
            // `_id=a,b,...`: those resources, whoever's they are (a mixed answer).
            if let Some(ids) = query.split('&').find_map(|kv| kv.strip_prefix("_id=")) {
                let ids: Vec<&str> = ids.split(',').collect();
                let hits = self
                    .fixtures
                    .iter()
                    .filter(|r| r["resourceType"] == t && ids.iter().any(|i| r["id"] == *i))
                    .collect();
                return (hits, true);
            }
            let patient = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("subject=").or(kv.strip_prefix("patient=")))
                .and_then(|r| r.strip_prefix("Patient/"))
                .expect("a search names its patient");
            let hits = self
                .fixtures
                .iter()
                .filter(|r| r["resourceType"] == t && patient_ids(r).iter().any(|p| p == patient))
                .collect();
            return (hits, true);
        }
        if let Some(p) = path.strip_suffix("/$everything") {
            let patient = p.strip_prefix("Patient/").unwrap();
            let hits = self
                .fixtures
                .iter()
                .filter(|r| patient_ids(r).iter().any(|x| x == patient))
                .collect();
            return (hits, true);
        }
        (vec![self.by_path(path)], false)
    }
}

fn id_of(r: &Value) -> String {
    r["id"].as_str().unwrap().to_owned()
}

/// A scenario file, parsed; panics, saying where the file should be, when it is not there.
fn read(path: &str) -> Value {
    let text = std::fs::read_to_string(PathBuf::from(path)).unwrap_or_else(|e| {
        panic!(
            "{path}: {e}. The consent scenarios are committed in conformance/consent-scenarios/ \
             (restore them with `git checkout -- conformance/consent-scenarios`)"
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// Runs one file; returns (scenarios, requests checked, `forbidden` requests left to identity).
fn run_file(path: &str, base: Option<&Suite>) -> (usize, usize, usize) {
    let file = read(path);
    let mut fixtures = base.map(|b| b.fixtures.clone()).unwrap_or_default();
    fixtures.extend(file["fixtures"].as_array().cloned().unwrap_or_default());
    let principals = file
        .get("principals")
        .cloned()
        .or_else(|| base.map(|b| b.principals.clone()))
        .unwrap();
    let suite = Suite {
        fixtures,
        principals,
    };
    let (mut checked, mut to_identity) = (0, 0);
    let scenarios = file["scenarios"].as_array().unwrap();
    for sc in scenarios {
        let name = sc["id"].as_str().unwrap();
        let default_policy: DefaultPolicy = sc["default_policy"].as_str().unwrap().parse().unwrap();
        let engine = PolicyEngine::new(OrgPolicies::shipped().unwrap(), default_policy);
        let consents: Vec<Arc<ConsentModel>> = sc["consents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Arc::new(ConsentModel::compile(c).unwrap_or_else(|e| panic!("{name}: {e}"))))
            .collect();
        for (i, rq) in sc["requests"].as_array().unwrap().iter().enumerate() {
            let at = format!("{name} request {i} ({} {})", rq["principal"], rq["path"]);
            let expect = rq["expect"].as_str().unwrap();
            if expect == "forbidden" {
                println!(
                    "{at}: `forbidden` is a SMART scope refusal, checked by identity::scopes \
                     and the consent_scenarios runner, not by the policy engine"
                );
                to_identity += 1;
                continue;
            }
            let action = match rq["method"].as_str().unwrap_or("GET") {
                "GET" => ActionKind::Read,
                _ => ActionKind::Write,
            };
            let facts = suite.facts(
                rq["principal"].as_str().unwrap(),
                rq["purpose"].as_str(),
                action,
            );
            let (returned, is_search) = suite.returned(rq["path"].as_str().unwrap());
            // Consents are loaded per patient: the patients of the returned data.
            let patients: BTreeSet<String> = returned.iter().flat_map(|r| patient_ids(r)).collect();
            let mut admitted = Vec::new();
            let mut break_glass = false;
            let mut removed = false;
            for patient in &patients {
                let theirs: Vec<Arc<ConsentModel>> = consents
                    .iter()
                    .filter(|c| c.patient == format!("Patient/{patient}"))
                    .cloned()
                    .collect();
                let eval = engine.evaluate(&facts, &theirs);
                let mut decision = eval.decision().clone();
                for r in returned.iter().filter(|r| patient_ids(r).contains(patient)) {
                    let a = eval.admit(&ResourceFacts::new(r).unwrap());
                    // A constant pre-decision must agree with the per-resource answer.
                    match decision.outcome {
                        Outcome::Permit => assert!(a.permit, "{at}: pre-decision permit"),
                        Outcome::Deny => assert!(!a.permit, "{at}: pre-decision deny"),
                        Outcome::PermitWithFilter => decision.record(&a),
                    }
                    if a.permit {
                        admitted.push(id_of(r));
                        break_glass |= a.break_glass;
                    } else {
                        assert!(!a.reasons.is_empty(), "{at}: a denial without reasons");
                        // A whole patient denied in a mixed answer is removed from it too.
                        removed = true;
                    }
                }
                removed |= decision.removed_any();
                if decision.removed_any() {
                    assert!(
                        decision.obligations.contains(&Obligation::SuppressTotal),
                        "{at}: removed entries without suppress-total"
                    );
                }
                serde_json::to_string(&decision).unwrap();
            }
            let ids = |k: &str| -> Vec<String> {
                rq[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            };
            match expect {
                "permit" => {
                    assert!(
                        !is_search && admitted.len() == 1,
                        "{at}: expected permit, got deny"
                    )
                }
                "deny" => assert!(admitted.is_empty(), "{at}: expected deny, got permit"),
                "visible" => {
                    let mut want = ids("ids");
                    want.sort();
                    admitted.sort();
                    assert_eq!(admitted, want, "{at}: visible entries");
                    if rq["total_hidden"] == true {
                        assert!(removed, "{at}: total_hidden but nothing removed");
                    }
                }
                "visible_includes" => {
                    for id in ids("ids") {
                        assert!(admitted.contains(&id), "{at}: {id} should be visible");
                    }
                    for id in ids("absent") {
                        assert!(!admitted.contains(&id), "{at}: {id} should be hidden");
                    }
                }
                other => panic!("{at}: unknown expectation {other}"),
            }
            let alert = rq["alert"] == true;
            assert_eq!(break_glass, alert, "{at}: break-glass alert");
            checked += 1;
        }
    }
    (scenarios.len(), checked, to_identity)
}

fn shared_suite() -> Suite {
    let file = read(SHARED);
    Suite {
        fixtures: file["fixtures"].as_array().unwrap().clone(),
        principals: file["principals"].clone(),
    }
}

#[test]
fn shared_scenarios_all_pass() {
    let (n, checked, to_identity) = run_file(SHARED, None);
    assert_eq!(n, 19, "the shared file has 19 scenarios");
    println!(
        "shared scenarios: {n}, requests checked {checked}, left to identity (forbidden) {to_identity}"
    );
}

#[test]
fn extra_scenarios_all_pass() {
    let (n, checked, _) = run_file(EXTRA, Some(&shared_suite()));
    println!("extra scenarios: {n}, requests checked {checked}");
    assert!(n >= 10);
}
