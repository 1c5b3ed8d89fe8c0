//! Pass-through through the real binary in front of the real upstream: URLs re-homed in JSON and XML,
//! headers kept, metadata marked, admin endpoints, request ids, and logs free of PHI.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use anchorgate_e2e::{client, superuser_token, Gateway, Upstream};
use serde_json::{json, Value};

fn create_patient(family: &str) -> (String, reqwest::blocking::Response) {
    let gw = Gateway::shared();
    let resp = client()
        .post(format!("{}/Patient", gw.base))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "name": [{"family": family}], "birthDate": "1970-01-01"}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    (location, resp)
}

fn upstream_authority() -> String {
    format!("127.0.0.1:{}", Upstream::shared().port)
}

#[test]
fn create_read_update_keep_fhir_headers_and_rehome_location() {
    let gw = Gateway::shared();
    let (location, resp) = create_patient("Rehome");
    assert!(
        location.starts_with(&format!("{}/Patient/", gw.base)),
        "{location}"
    );
    assert!(location.contains("/_history/1"));
    assert_eq!(resp.headers()["etag"], "W/\"1\"");
    assert!(resp.headers().get("last-modified").is_some());
    let id = location.split('/').nth_back(2).unwrap().to_owned();

    let read = client()
        .get(format!("{}/Patient/{id}", gw.base))
        .send()
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["etag"], "W/\"1\"");
    let mut patient: Value = read.json().unwrap();
    assert_eq!(patient["name"][0]["family"], "Rehome");

    patient["gender"] = json!("female");
    let updated = client()
        .put(format!("{}/Patient/{id}", gw.base))
        .header("content-type", "application/fhir+json")
        .header("if-match", "W/\"1\"")
        .body(patient.to_string())
        .send()
        .unwrap();
    assert_eq!(updated.status(), 200);
    assert_eq!(updated.headers()["etag"], "W/\"2\"");
    assert_eq!(
        updated.headers()["location"].to_str().unwrap(),
        format!("{}/Patient/{id}/_history/2", gw.base)
    );
    let stale = client()
        .put(format!("{}/Patient/{id}", gw.base))
        .header("content-type", "application/fhir+json")
        .header("if-match", "W/\"1\"")
        .body(patient.to_string())
        .send()
        .unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(
        stale.json::<Value>().unwrap()["resourceType"],
        "OperationOutcome"
    );
}

#[test]
fn search_links_and_full_urls_point_at_the_gateway_and_paging_works() {
    let gw = Gateway::shared();
    let family = format!("Pager{}", std::process::id());
    for _ in 0..5 {
        create_patient(&family);
    }
    let mut url = format!("{}/Patient?family={family}&_count=2", gw.base);
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let resp = client().get(&url).send().unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().unwrap();
        assert!(
            !text.contains(&upstream_authority()),
            "upstream base leaked: {text}"
        );
        let bundle: Value = serde_json::from_str(&text).unwrap();
        for e in bundle["entry"].as_array().into_iter().flatten() {
            assert!(e["fullUrl"].as_str().unwrap().starts_with(&gw.base));
            seen += 1;
        }
        pages += 1;
        let next = bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
        match next {
            Some(n) => {
                assert!(n.starts_with(&gw.base), "{n}");
                url = n;
            }
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!((seen, pages), (5, 3));
}

#[test]
fn xml_search_is_rehomed_too() {
    let gw = Gateway::shared();
    let family = format!("Xml{}", std::process::id());
    create_patient(&family);
    for (query, accept) in [("&_format=xml", "*/*"), ("", "application/fhir+xml")] {
        let resp = client()
            .get(format!("{}/Patient?family={family}{query}", gw.base))
            .header("accept", accept)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+xml"));
        let text = resp.text().unwrap();
        assert!(text.contains("<Bundle"), "{text}");
        assert!(
            text.contains(&format!("<fullUrl value=\"{}/Patient/", gw.base)),
            "{text}"
        );
        assert!(
            !text.contains(&upstream_authority()),
            "upstream base leaked: {text}"
        );
    }
}

#[test]
fn metadata_is_marked_in_json_and_xml() {
    let gw = Gateway::shared();
    let cs: Value = client()
        .get(format!("{}/metadata", gw.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["implementation"]["url"], gw.base.as_str());
    assert!(cs["implementation"]["description"]
        .as_str()
        .unwrap()
        .contains("Served through Anchorgate"));
    let xml = client()
        .get(format!("{}/metadata?_format=xml", gw.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(xml.contains("Served through Anchorgate"));
    assert!(xml.contains(&format!("<url value=\"{}\"/>", gw.base)));
    assert!(!xml.contains(&upstream_authority()));
}

#[test]
fn transaction_with_urn_uuid_references_passes_and_is_rehomed() {
    let gw = Gateway::shared();
    let bundle = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
             "resource": {"resourceType": "Patient", "name": [{"family": "Txn"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059",
             "resource": {"resourceType": "Observation", "status": "final",
                          "code": {"text": "weight"},
                          "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
             "request": {"method": "POST", "url": "Observation"}}
        ]
    });
    let resp = client()
        .post(&gw.base)
        .header("content-type", "application/fhir+json")
        .body(bundle.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().unwrap();
    assert_eq!(out["type"], "transaction-response");
    for e in out["entry"].as_array().unwrap() {
        assert!(e["response"]["location"]
            .as_str()
            .unwrap()
            .starts_with(&gw.base));
    }
    let obs_loc = out["entry"][1]["response"]["location"].as_str().unwrap();
    let obs: Value = client().get(obs_loc).send().unwrap().json().unwrap();
    assert!(obs["subject"]["reference"]
        .as_str()
        .unwrap()
        .starts_with("Patient/"));
}

#[test]
fn admin_endpoints_and_request_ids() {
    let gw = Gateway::shared();
    let c = client();
    assert_eq!(
        c.get(format!("{}/healthz", gw.root()))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{}/readyz", gw.root()))
            .send()
            .unwrap()
            .status(),
        200
    );
    let r = c.get(format!("{}/metadata", gw.base)).send().unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32);
    // A client cannot choose its request id; only a trusted proxy can.
    let r = c
        .get(format!("{}/metadata", gw.base))
        .header("x-request-id", "forged")
        .send()
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "forged");
    let metrics = c
        .get(format!("{}/metrics", gw.root()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("anchorgate_requests_total{interaction=\"capabilities\",resource_type=\"none\",status=\"200\"}"), "{metrics}");
    assert!(metrics.contains("anchorgate_request_duration_seconds_bucket"));
    assert!(metrics.contains("anchorgate_upstream_duration_seconds_bucket"));
}

#[test]
fn logs_carry_no_phi_no_query_and_no_tokens() {
    let gw = Gateway::shared();
    let secret_name = "Zzyzxsecretfamily";
    let _ = client()
        .get(format!("{}/Patient?family={secret_name}", gw.base))
        .header("authorization", "Bearer sekret-token-value")
        .send()
        .unwrap();
    let _ = client()
        .post(format!("{}/Patient", gw.base))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "name": [{"family": secret_name}]}).to_string())
        .send()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = gw.log_text();
    assert!(!log.contains(secret_name), "PHI in log");
    assert!(!log.contains("sekret-token-value"), "token in log");
    let lines = gw.log_lines();
    assert!(lines
        .iter()
        .any(|l| l["message"] == "request" && l["interaction"] == "search-type"));
    assert!(lines
        .iter()
        .any(|l| l["message"] == "request" && l["interaction"] == "create" && l["status"] == 201));
}

#[test]
fn clients_may_speak_http2() {
    let gw = Gateway::shared();
    let c = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/Patient?_count=1", gw.base))
        .bearer_auth(superuser_token())
        .send()
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert!(!r.text().unwrap().contains(&upstream_authority()));
}

#[test]
fn head_keeps_headers_without_a_stale_length() {
    let gw = Gateway::shared();
    let r = client()
        .head(format!("{}/metadata", gw.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+json"));
}

#[test]
fn forwarded_headers_are_believed_only_from_trusted_proxies() {
    let up = Upstream::shared();
    let trusting = anchorgate_e2e::Gateway::start_with(
        &up.base,
        anchorgate_e2e::GatewayOptions {
            config_toml: Some("trusted_proxies = [\"127.0.0.0/8\"]\n".into()),
            ..Default::default()
        },
    );
    let untrusting = Gateway::shared();
    let read_url = |gw: &Gateway| {
        let r = client()
            .get(format!("{}/metadata", gw.base))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "fhir.example.org")
            .header("x-request-id", "lb-123")
            .send()
            .unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let cs: Value = r.json().unwrap();
        (cs["implementation"]["url"].as_str().unwrap().to_owned(), id)
    };
    assert_eq!(
        read_url(&trusting),
        (
            "https://fhir.example.org/fhir".to_owned(),
            "lb-123".to_owned()
        )
    );
    let (url, id) = read_url(untrusting);
    assert_eq!(url, untrusting.base);
    assert_ne!(id, "lb-123");
}
