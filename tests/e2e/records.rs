//! Every request that gets a decision id gets a stored, anchored decision record, whatever way it ends:
//! an answer, a malformed body (400), a body too large (413), a wrong media type (415), an invalid
//! resource (422), a failing PATCH, `$validate`, an unreachable upstream (502).
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
