//! Format bridging against the real upstream: with `upstream_format` fixed, clients still write and read
//! in whichever of JSON and XML they choose, and the upstream only ever sees its own format.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use anchorgate_e2e::{client, Gateway, GatewayOptions, Upstream};
use serde_json::Value;

fn gateway(format: &str) -> Gateway {
    Gateway::start_with(
        &Upstream::shared().base,
        GatewayOptions {
            config_toml: Some(format!("upstream_format = \"{format}\"\n")),
            ..Default::default()
        },
    )
}

const PATIENT_XML: &str = r#"<Patient xmlns="http://hl7.org/fhir"><name><family value="Bridgexml"/><given value="Ann"/></name><birthDate value="1980-02-03"/></Patient>"#;

#[test]
fn json_upstream_serves_xml_clients() {
    let gw = gateway("json");
    let created = client()
        .post(format!("{}/Patient", gw.base))
        .header("content-type", "application/fhir+xml")
        .header("accept", "application/fhir+xml")
        .body(PATIENT_XML)
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+xml"));
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let body = created.text().unwrap();
    assert!(body.contains("<family value=\"Bridgexml\"/>"), "{body}");
    // The upstream stored it from JSON (it answers JSON instants with `Z`).
    let id = location.split('/').nth_back(2).unwrap();
    let direct: Value = client()
        .get(format!("{}/Patient/{id}", Upstream::shared().base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(direct["name"][0]["given"][0], "Ann");

    let xml = client()
        .get(format!("{}/Patient?family=Bridgexml&_format=xml", gw.base))
        .send()
        .unwrap();
    assert!(xml.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+xml"));
    let text = xml.text().unwrap();
    assert!(
        text.contains(&format!("<fullUrl value=\"{}/Patient/{id}\"/>", gw.base)),
        "{text}"
    );
    assert!(!text.contains(&Upstream::shared().base));
}

#[test]
fn xml_upstream_serves_json_clients() {
    let gw = gateway("xml");
    let created = client()
        .post(format!("{}/Patient", gw.base))
        .header("content-type", "application/fhir+json")
        .body(r#"{"resourceType":"Patient","name":[{"family":"Bridgejson"}],"active":true}"#)
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+json"));
    let v: Value = created.json().unwrap();
    assert_eq!(v["active"], true);
    assert_eq!(v["name"][0]["family"], "Bridgejson");
    // This upstream writes XML instants as `+00:00`, JSON ones as `Z`: the answer came as XML.
    assert!(
        v["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .ends_with("+00:00"),
        "{v}"
    );

    let err = client()
        .get(format!("{}/Patient/no-such-id", gw.base))
        .send()
        .unwrap();
    assert_eq!(err.status(), 404);
    let oo: Value = err.json().unwrap();
    assert_eq!(oo["resourceType"], "OperationOutcome");
}
