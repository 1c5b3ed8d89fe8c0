//! Every request that gets a decision id gets a stored, anchored decision record, whatever way it ends:
//! an answer, a malformed body (400), a body too large (413), a wrong media type (415), an invalid
//! resource (422), a failing PATCH, `$validate`, an unreachable upstream (502), and a refusal of a
//! join carried outside the URL (a POST `_search` form, `If-None-Exist`, a batch entry).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anchorgate_e2e::{client, free_port, Gateway, GatewayOptions, Upstream};
use serde_json::Value;

/// Sends `req`; answers its status and the decision id it names.
fn decided(req: reqwest::blocking::RequestBuilder) -> (u16, String) {
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    let id = r
        .headers()
        .get("x-anchorgate-decision")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("a {status} answer names no decision"));
    (status, id)
}

/// The stored record of `id`, with its ledger proof: its status must be the one the client got.
fn assert_recorded(gw: &Gateway, id: &str, status: u16) {
    let r = client()
        .get(format!("{}/audit/decisions/{id}", gw.root()))
        .send()
        .unwrap();
    let code = r.status().as_u16();
    let text = r.text().unwrap();
    assert_eq!(
        code, 200,
        "decision {id} (a {status} answer) not stored: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["decision"]["status"], status, "{text}");
    assert!(
        v["decision"]["leaf"].is_u64(),
        "decision {id} not anchored: {text}"
    );
    assert!(
        v.get("proof").is_some(),
        "decision {id} has no proof: {text}"
    );
}

#[test]
fn failed_requests_keep_their_decision_records() {
    let up = Upstream::shared();
    let gw = Gateway::start_with(
        &up.base,
        GatewayOptions {
            config_toml: Some("[limits]\nmax_request_body = 4096\n".into()),
            ..Default::default()
        },
    );
    let base = &gw.base;
    let fhir_json = "application/fhir+json";
    let cases: Vec<(u16, reqwest::blocking::RequestBuilder)> = vec![
        (
            400,
            client()
                .post(format!("{base}/Patient"))
                .header("content-type", fhir_json)
                .body("{\"resourceType\":\"Patient\","),
        ),
        (
            413,
            client()
                .post(format!("{base}/Patient"))
                .header("content-type", fhir_json)
                .body(format!(
                    "{{\"resourceType\":\"Patient\",\"id\":\"{}\"}}",
                    "a".repeat(8000)
                )),
        ),
        (
            415,
            client()
                .post(format!("{base}/Patient"))
                .header("content-type", "text/plain")
                .body("hello"),
        ),
        (
            422,
            client()
                .post(format!("{base}/Patient"))
                .header("content-type", fhir_json)
                .body("{\"resourceType\":\"Patient\",\"gender\":\"sometimes\"}"),
        ),
        (
            200,
            client()
                .post(format!("{base}/Patient/$validate"))
                .header("content-type", fhir_json)
                .body("{\"resourceType\":\"Patient\",\"gender\":\"sometimes\"}"),
        ),
        (
            404,
            client()
                .patch(format!("{base}/Patient/no-such-patient-{}", free_port()))
                .header("content-type", "application/json-patch+json")
                .body("[{\"op\":\"replace\",\"path\":\"/gender\",\"value\":\"female\"}]"),
        ),
    ];
    for (want, req) in cases {
        let (status, id) = decided(req);
        assert_eq!(status, want, "decision {id}");
        assert_recorded(&gw, &id, status);
    }
}

#[test]
fn an_unreachable_upstream_keeps_the_decision_record() {
    // Nothing listens there: the connection is refused.
    let gw = Gateway::start(&format!("http://127.0.0.1:{}/fhir", free_port()));
    let (status, id) = decided(client().get(format!("{}/Patient/p1", gw.base)));
    assert_eq!(status, 502);
    assert_recorded(&gw, &id, 502);
}

/// Joins (`_has`, chains) are refused wherever search parameters travel, each refusal recorded.
#[test]
fn joins_outside_the_url_are_refused_and_recorded() {
    let gw = Gateway::shared();
    let base = &gw.base;
    let patient = "{\"resourceType\":\"Patient\",\"active\":true}";
    let batch = serde_json::json!({"resourceType": "Bundle", "type": "batch", "entry": [{
        "resource": {"resourceType": "Patient", "active": true},
        "request": {"method": "POST", "url": "Patient",
                    "ifNoneExist": "general-practitioner.name=Able"}
    }]});
    let cases = vec![
        (
            "_has:Observation:subject:code",
            client()
                .post(format!("{base}/Patient/_search"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("_has%3AObservation%3Asubject%3Acode=11331-6"),
        ),
        (
            "subject.name",
            client()
                .post(format!("{base}/Observation/_search"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("code=1&subject.name=Prior"),
        ),
        (
            "_has:Observation:subject:code",
            client()
                .post(format!("{base}/Patient"))
                .header("content-type", "application/fhir+json")
                .header("if-none-exist", "_has:Observation:subject:code=11331-6")
                .body(patient),
        ),
        (
            "general-practitioner.name",
            client()
                .post(base.to_string())
                .header("content-type", "application/fhir+json")
                .body(batch.to_string()),
        ),
    ];
    for (param, req) in cases {
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        let id = r
            .headers()
            .get("x-anchorgate-decision")
            .and_then(|v| v.to_str().ok())
            .unwrap()
            .to_owned();
        let text = r.text().unwrap();
        assert_eq!(status, 403, "{param}: {text}");
        assert!(text.contains(param), "{param}: {text}");
        assert_recorded(gw, &id, 403);
        let rec: Value = client()
            .get(format!("{}/audit/decisions/{id}", gw.root()))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(rec["decision"]["outcome"], "deny", "{rec}");
        assert!(
            rec["decision"]["reasons"].to_string().contains("no-joins"),
            "{rec}"
        );
    }
}
