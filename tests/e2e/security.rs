//! Hostile and broken credentials, scope escalation, cursor replay and consent tampering, through the
//! real binary: each answers with a clear OperationOutcome and leaks no patient data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anchorgate_e2e::{
    anonymous_client, client, client_as, consent_scenarios, mint, put_resource, put_resources,
    Gateway, GatewayOptions, Upstream,
};
use base64::Engine;
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The consent scenarios' fixtures, loaded once into the shared upstream.
fn fixtures() -> &'static str {
    static DONE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let up = Upstream::shared();
        let scenarios = consent_scenarios("scenarios.json");
        put_resources(&up.base, scenarios["fixtures"].as_array().unwrap());
        up.base.clone()
    })
}

fn dr(sub: &str, org: &str, purposes: &[&str], extra: Value) -> String {
    let mut claims = json!({
        "sub": format!("Practitioner/{sub}"),
        "fhirUser": format!("Practitioner/{sub}"),
        "client_id": "ehr",
        "scope": "user/*.rs",
        "extensions": {"hl7-b2b": {"organization_id": format!("Organization/{org}"), "purpose_of_use": purposes}},
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    mint(claims)
}

/// Status, body, and the WWW-Authenticate header of `GET path` with `token` (or none).
fn get(gw: &Gateway, path: &str, token: Option<&str>) -> (u16, Value, Option<String>) {
    let c = match token {
        Some(t) => client_as(t),
        None => anonymous_client(),
    };
    let r = c.get(format!("{}/{path}", gw.base)).send().unwrap();
    let status = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().unwrap();
    assert!(!text.contains("Prior"), "patient data leaked: {text}");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        www,
    )
}

fn assert_refused(got: (u16, Value, Option<String>), status: u16, needle: &str) {
    let (s, body, www) = got;
    assert_eq!(s, status, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    let text = body.to_string().to_lowercase();
    assert!(text.contains(needle), "{needle:?} not in {body}");
    if status == 401 {
        assert!(www.unwrap().starts_with("Bearer"));
    }
}

/// The decision record id a response names.
fn decision_of(r: &reqwest::blocking::Response) -> String {
    r.headers()["x-anchorgate-decision"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn bad_tokens_are_refused_with_401_and_no_data() {
    fixtures();
    let gw = Gateway::shared();
    let path = "Observation/obs-o1";
    assert_refused(get(gw, path, None), 401, "token");
    let expired = dr(
        "prac-a",
        "org-h1",
        &["TREAT"],
        json!({"exp": now() - 3600, "iat": now() - 7200}),
    );
    assert_refused(get(gw, path, Some(&expired)), 401, "expired");
    let future = dr("prac-a", "org-h1", &["TREAT"], json!({"nbf": now() + 3600}));
    assert_refused(get(gw, path, Some(&future)), 401, "not valid before");
    let wrong_aud = dr(
        "prac-a",
        "org-h1",
        &["TREAT"],
        json!({"aud": "https://elsewhere.test/fhir"}),
    );
    assert_refused(get(gw, path, Some(&wrong_aud)), 401, "aud");
    let wrong_iss = dr(
        "prac-a",
        "org-h1",
        &["TREAT"],
        json!({"iss": "https://evil.test"}),
    );
    assert_refused(get(gw, path, Some(&wrong_iss)), 401, "issuer");
    // alg: none, claims otherwise perfect.
    let good = dr("prac-a", "org-h1", &["TREAT"], json!({}));
    let payload = good.split('.').nth(1).unwrap();
    let none = format!(
        "{}.{payload}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    assert_refused(get(gw, path, Some(&none)), 401, "none");
    // A tampered signature.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut sig = B64.decode(&parts[2]).unwrap();
    sig[5] ^= 0x40;
    parts[2] = B64.encode(sig);
    assert_refused(get(gw, path, Some(&parts.join("."))), 401, "signature");
    // A tampered payload under the original signature (a scope escalation attempt).
    let mut claims: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    claims["scope"] = json!("system/*.cruds");
    let forged = format!(
        "{}.{}.{}",
        good.split('.').next().unwrap(),
        B64.encode(claims.to_string()),
        good.split('.').nth(2).unwrap()
    );
    assert_refused(get(gw, path, Some(&forged)), 401, "signature");
    // Garbage.
    assert_refused(get(gw, path, Some("not-a-jwt")), 401, "token");
    // The good token works.
    let (s, body, _) = get(gw, "Practitioner/prac-a", Some(&good));
    assert_eq!(s, 200, "{body}");
}

#[test]
fn a_replayed_jti_is_refused() {
    fixtures();
    let gw = Gateway::shared();
    let jti = format!("jti-{}", now());
    let first = dr("prac-a", "org-h1", &["TREAT"], json!({"jti": jti}));
    let (s, _, _) = get(gw, "Practitioner/prac-a", Some(&first));
    assert_eq!(s, 200);
    // The same token again is fine (bearer tokens are reused); another token with that jti is not.
    assert_eq!(get(gw, "Practitioner/prac-a", Some(&first)).0, 200);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = dr("prac-a", "org-h1", &["TREAT"], json!({"jti": jti}));
    assert_ne!(first, second);
    assert_refused(get(gw, "Practitioner/prac-a", Some(&second)), 401, "jti");
}

#[test]
fn scopes_and_purposes_cannot_be_widened() {
    fixtures();
    let gw = Gateway::shared();
    let narrow = mint(json!({
        "sub": "Practitioner/prac-a", "fhirUser": "Practitioner/prac-a", "client_id": "ehr",
        "scope": "user/Patient.rs",
        "extensions": {"hl7-b2b": {"organization_id": "Organization/org-h1", "purpose_of_use": ["TREAT"]}},
    }));
    assert_refused(get(gw, "Observation/obs-o1", Some(&narrow)), 403, "scope");
    assert_refused(
        get(gw, "Observation?subject=Patient/pat-p", Some(&narrow)),
        403,
        "scope",
    );
    let r = client_as(&narrow)
        .put(format!("{}/Patient/pat-p", gw.base))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "id": "pat-p"}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    // A purpose the token does not grant.
    let treat = dr("prac-a", "org-h1", &["TREAT"], json!({}));
    let r = client_as(&treat)
        .get(format!("{}/Practitioner/prac-a", gw.base))
        .header("x-purpose-of-use", "HRESCH")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().unwrap()["resourceType"],
        "OperationOutcome"
    );
    // No purpose at all.
    let none = dr("prac-a", "org-h1", &[], json!({}));
    assert_refused(get(gw, "Practitioner/prac-a", Some(&none)), 403, "purpose");
    // Joins.
    assert_refused(
        get(
            gw,
            "Patient?_has:Observation:subject:code=11331-6",
            Some(&treat),
        ),
        403,
        "_has",
    );
    assert_refused(
        get(gw, "Observation?subject.name=Prior", Some(&treat)),
        403,
        "subject.name",
    );
    // Decision records are for reviewers only.
    let r = client_as(&treat)
        .get(format!("{}/audit/decisions", gw.root()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_refused(
        get(gw, "AuditEvent?patient=pat-p", Some(&treat)),
        403,
        "reviewer",
    );
}

#[test]
fn a_paging_cursor_only_works_for_its_principal() {
    fixtures();
    let gw = Gateway::shared();
    let a = dr("prac-a", "org-h1", &["TREAT"], json!({}));
    let (s, page, _) = get(gw, "Observation?subject=Patient/pat-p&_count=1", Some(&a));
    assert_eq!(s, 200, "{page}");
    let next = page["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .map(|l| l["url"].as_str().unwrap().to_owned())
        .expect("a next link");
    assert!(next.contains("_cursor="), "{next}");
    assert!(!next.contains(&Upstream::shared().base), "{next}");
    let follow = |t: &str| client_as(t).get(&next).send().unwrap();
    assert_eq!(follow(&a).status(), 200);
    let x = dr("prac-x", "org-h2", &["TREAT"], json!({}));
    let r = follow(&x);
    assert_eq!(r.status(), 403);
    let text = r.text().unwrap();
    assert!(text.contains("cursor") && !text.contains("Prior"), "{text}");
}

#[test]
fn a_consent_tampered_in_the_store_is_ignored_and_raises_an_alert() {
    let upstream = fixtures();
    let mut gw = Gateway::start_with(
        upstream,
        GatewayOptions {
            config_toml: Some("[policy]\ndefault_policy = \"deny\"\n".into()),
            ..Default::default()
        },
    );
    // A consent permitting treatment of pat-p, recorded through the gateway.
    let consent = json!({
        "resourceType": "Consent", "id": "c-tamper", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/pat-p"}, "dateTime": "2024-01-01",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
    });
    put_resource(&gw.base, &consent);
    let a = dr("prac-a", "org-h1", &["TREAT"], json!({}));
    assert_eq!(get(&gw, "Observation/obs-o1", Some(&a)).0, 200);

    // Someone edits the store behind the gateway's back: the consent now also permits research.
    let reuse = gw.reuse().unwrap();
    gw.terminate(std::time::Duration::from_secs(10));
    let db = reuse.0.join("store.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let body: Vec<u8> = conn
        .query_row("SELECT body FROM consents WHERE id = 'c-tamper'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let forged = String::from_utf8(body)
        .unwrap()
        .replace("\"TREAT\"", "\"HRESCH\"");
    conn.execute(
        "UPDATE consents SET body = ?1 WHERE id = 'c-tamper'",
        [forged.as_bytes()],
    )
    .unwrap();
    drop(conn);
    let gw = Gateway::start_with(
        upstream,
        GatewayOptions {
            config_toml: Some("[policy]\ndefault_policy = \"deny\"\n".into()),
            reuse: Some(reuse),
            ..Default::default()
        },
    );
    let r = client_as(&a)
        .get(format!("{}/Observation/obs-o1", gw.base))
        .send()
        .unwrap();
    // The forged consent is not enforced: default deny, hidden as 404.
    assert_eq!(r.status(), 404);
    let decision = decision_of(&r);
    assert!(!r.text().unwrap().contains("Prior"));
    let rec: Value = client()
        .get(format!("{}/audit/decisions/{decision}", gw.root()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        rec["decision"]["tamperedConsents"],
        json!(["c-tamper"]),
        "{rec}"
    );
    let metrics = gw.metrics_text();
    assert!(
        metrics.contains("anchorgate_consent_integrity_alerts_total 1"),
        "{metrics}"
    );
    assert!(gw.log_text().contains("SECURITY"));
}

#[test]
fn every_entry_of_a_transaction_or_batch_is_authorised() {
    fixtures();
    let gw = Gateway::shared();
    let narrow = mint(json!({
        "sub": "Practitioner/prac-a", "fhirUser": "Practitioner/prac-a", "client_id": "ehr",
        "scope": "user/Patient.cru",
        "extensions": {"hl7-b2b": {"organization_id": "Organization/org-h1", "purpose_of_use": ["TREAT"]}},
    }));
    let tx = |kind: &str, second: Value| {
        json!({"resourceType": "Bundle", "type": kind, "entry": [
            {"fullUrl": "urn:uuid:0d1b7a3c-5d8e-4d8a-9a59-0a2b6f6b9c01",
             "resource": {"resourceType": "Patient", "name": [{"family": "Txtest"}]},
             "request": {"method": "POST", "url": "Patient"}},
            second
        ]})
        .to_string()
    };
    let obs = json!({"fullUrl": "urn:uuid:0d1b7a3c-5d8e-4d8a-9a59-0a2b6f6b9c02",
        "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        "request": {"method": "POST", "url": "Observation"}});
    for kind in ["transaction", "batch"] {
        let r = client_as(&narrow)
            .post(&gw.base)
            .header("content-type", "application/fhir+json")
            .body(tx(kind, obs.clone()))
            .send()
            .unwrap();
        assert_eq!(r.status(), 403, "{kind}");
        let body: Value = r.json().unwrap();
        assert!(body.to_string().contains("Bundle.entry[1]"), "{body}");
    }
    // Reads inside a batch are judged like reads: pat-p's Observation is hidden from a partner abroad.
    let fr = mint(json!({
        "sub": "partner-fr-system", "client_id": "partner-fr", "scope": "system/*.rs",
        "extensions": {"hl7-b2b": {"organization_id": "Organization/org-fr", "purpose_of_use": ["TREAT"]}},
    }));
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Observation/obs-o1"}},
        {"request": {"method": "GET", "url": "Practitioner/prac-a"}},
        {"request": {"method": "GET", "url": "Observation?subject=Patient/pat-p"}}
    ]});
    let r = client_as(&fr)
        .post(&gw.base)
        .header("content-type", "application/fhir+json")
        .body(batch.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["entry"][0]["response"]["status"], "404 Not Found",
        "{body}"
    );
    assert!(body["entry"][0].get("resource").is_none());
    assert_eq!(body["entry"][1]["resource"]["id"], "prac-a");
    assert_eq!(
        body["entry"][2]["resource"]["entry"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "{body}"
    );
    assert!(
        !text.contains("Heart rate") && !text.contains("Glucose"),
        "{text}"
    );
}

#[test]
fn ledger_operations_are_authorised_as_the_read_is() {
    fixtures();
    let gw = Gateway::shared();
    // An Observation of pat-p written (and so anchored) through the gateway.
    let obs = json!({"resourceType": "Observation", "id": "obs-anchored-p", "status": "final",
        "code": {"text": "Anchored heart rate"}, "subject": {"reference": "Patient/pat-p"}});
    let r = put_resource(&gw.base, &obs);
    let version = r.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_owned();
    let verify = "Observation/obs-anchored-p/$verify".to_owned();
    let receipt = format!("Observation/obs-anchored-p/_history/{version}/$receipt");
    // A partner abroad may not read pat-p's Observations, so neither may it verify nor get receipts.
    let fr = mint(json!({
        "sub": "partner-fr-system", "client_id": "partner-fr", "scope": "system/*.rs",
        "extensions": {"hl7-b2b": {"organization_id": "Organization/org-fr", "purpose_of_use": ["TREAT"]}},
    }));
    for path in [&verify, &receipt] {
        let r = client_as(&fr)
            .get(format!("{}/{path}", gw.base))
            .send()
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.headers().get("x-anchorgate-decision").is_some());
        let text = r.text().unwrap();
        assert!(
            !text.contains("Anchored heart rate") && !text.contains("leafIndex"),
            "{text}"
        );
    }
    // A token without read scope on Observation is refused before anything is read.
    let narrow = dr(
        "prac-a",
        "org-h1",
        &["TREAT"],
        json!({"scope": "user/Patient.rs"}),
    );
    assert_refused(get(gw, &verify, Some(&narrow)), 403, "scope");
    // Someone who may read it gets the verdict and the receipt.
    let (s, body, _) = get(gw, &verify, Some(anchorgate_e2e::superuser_token()));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["parameter"][0]["valueCode"], "intact", "{body}");
    let (s, body, _) = get(gw, &receipt, Some(anchorgate_e2e::superuser_token()));
    assert_eq!(s, 200, "{body}");
}

#[test]
fn a_revoked_consent_stops_applying_on_the_next_request_and_reviewers_see_why() {
    let upstream = fixtures();
    let gw = Gateway::start_with(
        upstream,
        GatewayOptions {
            config_toml: Some("[policy]\ndefault_policy = \"deny\"\n".into()),
            ..Default::default()
        },
    );
    let mut consent = json!({
        "resourceType": "Consent", "id": "c-revoke", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/pat-p"}, "dateTime": "2024-01-01",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
    });
    let put = |c: &Value| {
        let r = put_resource(&gw.base, c);
        assert!(r.headers().get("x-anchorgate-leaf-index").is_some());
    };
    put(&consent);
    let a = dr("prac-a", "org-h1", &["TREAT"], json!({}));
    let first = client_as(&a)
        .get(format!("{}/Observation/obs-o1", gw.base))
        .send()
        .unwrap();
    assert_eq!(first.status(), 200);
    let permit_id = decision_of(&first);
    consent["status"] = json!("inactive");
    put(&consent);
    let second = client_as(&a)
        .get(format!("{}/Observation/obs-o1", gw.base))
        .send()
        .unwrap();
    assert_eq!(second.status(), 404);
    let deny_id = decision_of(&second);

    // The reviewer's views: the permit names the consent provision; the deny the default policy.
    let get = |path: String| -> Value {
        for _ in 0..50 {
            let r = client().get(&path).send().unwrap();
            if r.status() == 200 {
                return r.json().unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{path} never answered 200");
    };
    let permit = get(format!("{}/audit/decisions/{permit_id}", gw.root()));
    assert_eq!(permit["decision"]["outcome"], "permit");
    assert_eq!(
        permit["decision"]["reasons"][0]["consent"], "c-revoke",
        "{permit}"
    );
    assert!(permit["proof"]["inclusion"].is_array(), "{permit}");
    assert!(
        permit["explanation"]
            .to_string()
            .contains("Consent/c-revoke version 1: provision Consent.provision says permit."),
        "{permit}"
    );
    // The reviewer can prove the record offline with the independent verifier: its commitment, the
    // entry, the inclusion proof and the signed checkpoint. A doctored record does not verify.
    let dir = anchorgate_e2e::work_dir("decision-receipt");
    let verify = |name: &str, doc: &Value| {
        let file = dir.join(name);
        std::fs::write(&file, doc.to_string()).unwrap();
        anchorgate_e2e::python_verify(&[
            "decision",
            "--response",
            file.to_str().unwrap(),
            "--key",
            &gw.verifier,
        ])
    };
    let (code, out) = verify("permit.json", &permit);
    assert_eq!(code, 0, "{out}");
    let mut doctored = permit.clone();
    doctored["decision"]["outcome"] = json!("deny");
    let (code, out) = verify("doctored.json", &doctored);
    assert_eq!(code, 1, "a doctored record must not verify: {out}");
    assert!(out.contains("not the one anchored"), "{out}");
    let deny = get(format!("{}/audit/decisions/{deny_id}", gw.root()));
    assert_eq!(deny["decision"]["outcome"], "deny");
    assert_eq!(deny["decision"]["patients"], json!(["Patient/pat-p"]));
    let list = get(format!(
        "{}/audit/decisions?patient=pat-p&outcome=deny",
        gw.root()
    ));
    assert!(list["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["id"] == deny_id.as_str()));
    let events = get(format!("{}/AuditEvent?patient=pat-p&outcome=8", gw.base));
    assert_eq!(events["resourceType"], "Bundle");
    assert!(events.to_string().contains("AuthZ-Consent"), "{events}");
    // The reviewer's own access is a decision too.
    let r = client()
        .get(format!("{}/AuditEvent?patient=pat-p", gw.base))
        .send()
        .unwrap();
    let review_id = decision_of(&r);
    let review = get(format!("{}/audit/decisions/{review_id}", gw.root()));
    assert_eq!(review["decision"]["outcome"], "permit", "{review}");
    assert_eq!(
        review["decision"]["reasons"][0]["policy"], "compliance-reviewer",
        "{review}"
    );
    // A bad filter is a clear 400, never a silently wider query.
    let r = client()
        .get(format!("{}/audit/decisions?patinet=x", gw.root()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn consents_already_in_the_upstream_are_imported_and_decisions_exported() {
    let upstream = fixtures();
    // A patient, an Observation and a Consent written straight into the upstream, before any gateway.
    let consent = json!({
        "resourceType": "Consent", "id": "c-import", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/pat-imp"}, "dateTime": "2024-01-01",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
    });
    put_resources(
        upstream,
        &[
            json!({"resourceType": "Patient", "id": "pat-imp", "name": [{"family": "Imported"}]}),
            json!({"resourceType": "Observation", "id": "obs-imp", "status": "final",
                "code": {"text": "Imported glucose"}, "subject": {"reference": "Patient/pat-imp"}}),
            consent,
        ],
    );
    let opts = || GatewayOptions {
        config_toml: Some("[policy]\ndefault_policy = \"deny\"\n".into()),
        ..Default::default()
    };
    let a = dr("prac-a", "org-h1", &["TREAT"], json!({}));
    let mut gw = Gateway::start_with(upstream, opts());
    // Not anchored, so not enforced: the default (deny) applies.
    let before = get(&gw, "Observation/obs-imp", Some(&a));
    assert_eq!(before.0, 404, "{}", before.1);
    // The import needs the ledger to itself.
    let (code, _, err) = gw.command(&["consent", "import"]);
    assert_eq!(code, Some(2), "{err}");
    let reuse = gw.reuse();
    gw.terminate(std::time::Duration::from_secs(10));
    let (code, out, err) = gw.command(&["consent", "import"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(report["indexed"].as_u64().unwrap() >= 1, "{report}");
    // Anchors of c-import in the ledger's store (read while the gateway is stopped).
    let data_dir = reuse.as_ref().unwrap().0.clone();
    let anchors = || -> Vec<i64> {
        let conn = rusqlite::Connection::open(data_dir.join("ledger/ledger.sqlite")).unwrap();
        let mut q = conn
            .prepare("SELECT leaf FROM anchors WHERE rtype = 'Consent' AND rid = 'c-import'")
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let first = anchors();
    assert_eq!(first.len(), 1, "{first:?}");
    let gw = Gateway::start_with(
        upstream,
        GatewayOptions {
            reuse: reuse.clone(),
            ..opts()
        },
    );
    let after = client_as(&a)
        .get(format!("{}/Observation/obs-imp", gw.base))
        .send()
        .unwrap();
    assert_eq!(after.status(), 200);
    let decision = decision_of(&after);
    assert!(after.text().unwrap().contains("Imported glucose"));
    // Importing again anchors nothing new: a version already anchored keeps its leaf.
    let mut gw = gw;
    gw.terminate(std::time::Duration::from_secs(10));
    let (code, out, err) = gw.command(&["consent", "import"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(anchors(), first, "a second import anchored c-import again");
    let mut gw = Gateway::start_with(upstream, GatewayOptions { reuse, ..opts() });

    // The compliance export: both decisions on pat-imp, as NDJSON and as CSV, while the gateway runs.
    let (code, out, err) = gw.command(&[
        "audit",
        "export",
        "--format",
        "ndjson",
        "--filter",
        "patient=pat-imp",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["deny", "permit"], "{out}");
    assert_eq!(records[1]["id"], decision.as_str());
    assert_eq!(records[1]["reasons"][0]["consent"], "c-import", "{out}");
    assert!(records.iter().all(|r| r["leaf"].is_u64()), "{out}");
    assert!(
        !out.contains("Imported glucose"),
        "no clinical content in records"
    );
    let (code, csv, err) = gw.command(&[
        "audit",
        "export",
        "--format",
        "csv",
        "--filter",
        "patient=pat-imp",
        "--filter",
        "outcome=permit",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one record: {csv}");
    assert!(lines[0].starts_with("id,"), "{csv}");
    assert!(lines[1].contains(&decision), "{csv}");
    // A misspelt filter is a usage error, never a silently wider export.
    let (code, _, err) = gw.command(&["audit", "export", "--filter", "patinet=pat-imp"]);
    assert_eq!(code, Some(2), "{err}");
    gw.terminate(std::time::Duration::from_secs(10));
}
