//! Invalid writes never reach the upstream: 422 with every issue located, for single resources in JSON
//! and XML and for transactions as a whole, against the real upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use anchorgate_e2e::{client, Gateway, GatewayOptions, Upstream};
use serde_json::{json, Value};

fn post(base: &str, path: &str, content_type: &str, body: String) -> (u16, Value) {
    let (status, text) = anchorgate_e2e::post_body(base, path, content_type, body);
    (status, serde_json::from_str(&text).unwrap())
}

fn expressions(oo: &Value) -> Vec<String> {
    oo["issue"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

fn count(base: &str, query: &str) -> u64 {
    let b: Value = client()
        .get(format!("{base}/{query}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    b["total"].as_u64().unwrap()
}

#[test]
fn invalid_resources_are_422_with_every_issue() {
    let gw = Gateway::shared();
    let family = format!("Invalid{}", std::process::id());
    let bad = json!({"resourceType": "Patient", "name": [{"family": family}], "gender": "robot",
                     "birthDate": "1970-13-45", "favouriteColour": "blue"});
    let (status, oo) = post(
        &gw.base,
        "Patient",
        "application/fhir+json",
        bad.to_string(),
    );
    assert_eq!(status, 422, "{oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let exprs = expressions(&oo);
    for want in ["Patient.gender", "Patient.birthDate"] {
        assert!(exprs.iter().any(|e| e == want), "{want} not in {exprs:?}");
    }
    // As the HL7 validator does, an unknown element is reported at its parent, and named.
    assert!(
        oo["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["expression"][0] == "Patient"
                && i["diagnostics"]
                    .as_str()
                    .unwrap()
                    .contains("favouriteColour")),
        "{oo}"
    );
    assert!(
        !oo.to_string().contains("robot"),
        "values are not echoed: {oo}"
    );
    assert_eq!(
        count(
            &Upstream::shared().base,
            &format!("Patient?family={family}")
        ),
        0
    );

    let xml = r#"<Patient xmlns="http://hl7.org/fhir"><gender value="robot"/></Patient>"#;
    let (status, oo) = post(&gw.base, "Patient", "application/fhir+xml", xml.to_owned());
    assert_eq!(status, 422, "{oo}");
    assert!(expressions(&oo).iter().any(|e| e == "Patient.gender"));

    let (status, _) = post(
        &gw.base,
        "Patient",
        "application/fhir+json",
        json!({"resourceType": "Observation"}).to_string(),
    );
    assert_eq!(status, 400);
}

#[test]
fn a_transaction_with_one_invalid_entry_is_refused_whole() {
    let gw = Gateway::shared();
    let family = format!("Txn{}", std::process::id());
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0b0b0b0b-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Patient", "name": [{"family": family}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:0b0b0b0b-0000-4000-8000-000000000002",
         "resource": {"resourceType": "Observation", "code": {"text": "x"},
                      "subject": {"reference": "urn:uuid:0b0b0b0b-0000-4000-8000-000000000001"}},
         "request": {"method": "POST", "url": "Observation"}}
    ]});
    let (status, oo) = post(&gw.base, "", "application/fhir+json", bundle.to_string());
    assert_eq!(status, 422, "{oo}");
    // Observation.status is required (1..1); the location names the entry, in the HL7 validator's style.
    assert!(
        oo["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["expression"][0]
                .as_str()
                .unwrap()
                .starts_with("Bundle.entry[1].resource")
                && i["diagnostics"]
                    .as_str()
                    .unwrap()
                    .contains("Observation.status")),
        "{oo}"
    );
    assert_eq!(
        count(
            &Upstream::shared().base,
            &format!("Patient?family={family}")
        ),
        0
    );
}

#[test]
fn validation_can_be_turned_off_per_type() {
    let gw = Gateway::start_with(
        &Upstream::shared().base,
        GatewayOptions {
            config_toml: Some("[validation.per_type]\nBasic = \"off\"\n".into()),
            ..Default::default()
        },
    );
    // Basic.code is required; with validation off for Basic the upstream decides.
    let (status, _) = post(
        &gw.base,
        "Basic",
        "application/fhir+json",
        json!({"resourceType": "Basic"}).to_string(),
    );
    assert_ne!(status, 422);
    let (status, _) = post(
        &gw.base,
        "Patient",
        "application/fhir+json",
        json!({"resourceType": "Patient", "gender": "x"}).to_string(),
    );
    assert_eq!(status, 422);
}
