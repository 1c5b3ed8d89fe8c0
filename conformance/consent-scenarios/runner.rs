//! Consent scenario runner: every scenario of `consent-scenarios/scenarios.json` (the shared set, copied
//! here) and `consent-scenarios/extra.json` (ours), end to end through the real gateway binary in front of
//! the real test upstream.
//!
//! Per scenario: a fresh gateway (so it starts from no consents) with the scenario's default policy;
//! its consents are recorded through the gateway (validated, anchored, indexed); each request is sent
//! with a token minted for its principal and its purpose in `X-Purpose-Of-Use`; every expectation is
//! checked, including the break-glass alert on the request's decision record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use anchorgate_e2e::{
    client, client_as, consent_scenarios, mint, put_resources, Gateway, GatewayOptions, Upstream,
};
use serde_json::{json, Value};

/// A token for a scenario principal acting under `purpose` (none: a token without purposes).
fn token(principal: &Value, purpose: Option<&str>) -> String {
    let mut claims = json!({
        "sub": principal["sub"],
        "client_id": principal["client_id"],
        "scope": principal["scope"],
        "extensions": {"hl7-b2b": {
            "organization_id": principal["organization"],
            "purpose_of_use": purpose.map(|p| vec![p]).unwrap_or_default(),
        }},
    });
    if let Some(u) = principal.get("fhirUser") {
        claims["fhirUser"] = u.clone();
    }
    mint(claims)
}

fn match_ids(bundle: &Value) -> BTreeSet<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.pointer("/search/mode").and_then(Value::as_str) != Some("include"))
        .filter_map(|e| e.pointer("/resource/id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

fn all_ids(bundle: &Value) -> BTreeSet<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.pointer("/resource/id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// Runs one scenario; answers the failures (empty when it passed).
fn run(upstream: &str, principals: &Value, s: &Value) -> Vec<String> {
    let id = s["id"].as_str().unwrap();
    let policy = s["default_policy"].as_str().unwrap_or("deny");
    let gw = Gateway::start_with(
        upstream,
        GatewayOptions {
            config_toml: Some(format!("[policy]\ndefault_policy = \"{policy}\"\n")),
            ..Default::default()
        },
    );
    let mut failures = Vec::new();
    for c in s["consents"].as_array().into_iter().flatten() {
        let url = format!("{}/Consent/{}", gw.base, c["id"].as_str().unwrap());
        let r = client()
            .put(&url)
            .header("content-type", "application/fhir+json")
            .body(c.to_string())
            .send()
            .unwrap();
        let status = r.status();
        let anchored = r.headers().get("x-anchorgate-leaf-index").is_some();
        if !status.is_success() || !anchored {
            failures.push(format!(
                "{id}: recording {url} gave {status} (anchored: {anchored}): {}",
                r.text().unwrap_or_default()
            ));
        }
    }
    for (n, req) in s["requests"].as_array().into_iter().flatten().enumerate() {
        let who = req["principal"].as_str().unwrap();
        let purpose = req["purpose"].as_str();
        let tok = token(&principals[who], purpose);
        let url = format!("{}/{}", gw.base, req["path"].as_str().unwrap());
        let mut rb = client_as(&tok).get(&url);
        if let Some(p) = purpose {
            rb = rb.header("x-purpose-of-use", p);
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let decision = r
            .headers()
            .get("x-anchorgate-decision")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = r.text().unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let expect = req["expect"].as_str().unwrap();
        let is_read = !req["path"].as_str().unwrap().contains(['?', '$']);
        let what = format!(
            "{id} request {n} ({who} {purpose:?} GET {})",
            req["path"].as_str().unwrap()
        );
        let ok = match expect {
            "permit" => {
                (200..300).contains(&status)
                    && body["id"].as_str() == req["path"].as_str().unwrap().rsplit('/').next()
            }
            "deny" => {
                (status == 403 || (is_read && status == 404))
                    && body["resourceType"] == "OperationOutcome"
            }
            "forbidden" => status == 403 && body["resourceType"] == "OperationOutcome",
            "visible" => {
                let want = ids(&req["ids"]);
                let got = match_ids(&body);
                let total_ok = !req["total_hidden"].as_bool().unwrap_or(false)
                    || body.get("total").is_none()
                    || body["total"].as_u64() == Some(got.len() as u64);
                status == 200 && got == want && total_ok
            }
            "visible_includes" => {
                let got = all_ids(&body);
                status == 200
                    && ids(&req["ids"]).is_subset(&got)
                    && ids(&req["absent"]).is_disjoint(&got)
            }
            other => {
                failures.push(format!("{what}: unknown expectation {other}"));
                continue;
            }
        };
        if !ok {
            failures.push(format!(
                "{what}: expected {expect}, got {status}: {}",
                text.chars().take(400).collect::<String>()
            ));
            continue;
        }
        let want_alert = req["alert"].as_bool().unwrap_or(false);
        let Some(d) = decision else {
            failures.push(format!("{what}: no X-Anchorgate-Decision header"));
            continue;
        };
        let rec: Value = client()
            .get(format!("{}/audit/decisions/{d}", gw.root()))
            .send()
            .unwrap()
            .json()
            .unwrap_or(Value::Null);
        let alert = rec.pointer("/decision/breakGlass").and_then(Value::as_bool);
        if want_alert && alert != Some(true) {
            failures.push(format!(
                "{what}: expected a break-glass alert on decision {d}: {rec}"
            ));
        }
        if !want_alert && alert == Some(true) {
            failures.push(format!(
                "{what}: unexpected break-glass alert on decision {d}"
            ));
        }
    }
    failures
}

#[test]
fn every_consent_scenario_holds_end_to_end() {
    let shared = consent_scenarios("scenarios.json");
    let extra = consent_scenarios("extra.json");
    let upstream = Upstream::shared();
    put_resources(&upstream.base, shared["fixtures"].as_array().unwrap());
    let principals = &shared["principals"];
    let scenarios: Vec<&Value> = shared["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .chain(extra["scenarios"].as_array().unwrap())
        .collect();
    let mut failures = Vec::new();
    let mut passed = 0;
    for s in &scenarios {
        let f = run(&upstream.base, principals, s);
        if f.is_empty() {
            passed += 1;
        }
        failures.extend(f);
    }
    println!(
        "consent scenarios: {passed}/{} passed end to end",
        scenarios.len()
    );
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
