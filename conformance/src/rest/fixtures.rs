//! Test data the checks create (Patients, Observations, Bundles in JSON and XML), tagged by nonce.

use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde_json::{json, Value};

use super::transcript::{Call, Resp, Session};

/// The identifier system of everything the suite creates.
pub const SYS: &str = "urn:anchorgate:conformance";

/// A Patient whose identifier is `SYS|{tag}` and family name `{tag}`.
pub fn patient(tag: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": SYS, "value": tag}],
        "active": true,
        "name": [{"family": tag, "given": ["Conformance", "Check"]}],
        "gender": "male",
        "birthDate": "1980-01-01"
    })
}

/// An Observation about `subject` (a reference) with a heart rate of `value`.
pub fn observation(tag: &str, subject: &str, value: u32) -> Value {
    json!({
        "resourceType": "Observation",
        "identifier": [{"system": SYS, "value": tag}],
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

/// The body of a Patient in XML (no declaration), identified by `SYS|{tag}`.
pub fn patient_xml_inner(tag: &str, id: Option<&str>, gender: &str) -> String {
    let id = id
        .map(|i| format!("<id value=\"{i}\"/>"))
        .unwrap_or_default();
    format!(
        "<Patient xmlns=\"http://hl7.org/fhir\">{id}<identifier><system value=\"{SYS}\"/><value value=\"{tag}\"/></identifier><name><family value=\"{tag}\"/><given value=\"Xml\"/></name><gender value=\"{gender}\"/><birthDate value=\"1975-05-05\"/></Patient>"
    )
}

/// A Patient XML document.
pub fn patient_xml(tag: &str, id: Option<&str>, gender: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
        patient_xml_inner(tag, id, gender)
    )
}

/// A fixed `urn:uuid:` for in-Bundle references (`n` = 1, 2, …).
pub fn urn(n: u32) -> String {
    format!("urn:uuid:00000000-0000-4000-8000-{n:012}")
}

/// A Bundle entry for `method url` carrying `resource`, with an optional fullUrl.
pub fn entry(method: &str, url: &str, full_url: Option<&str>, resource: Option<Value>) -> Value {
    let mut e = json!({"request": {"method": method, "url": url}});
    if let Some(f) = full_url {
        e["fullUrl"] = json!(f);
    }
    if let Some(r) = resource {
        e["resource"] = r;
    }
    e
}

/// A batch or transaction Bundle.
pub fn bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

/// `identifier=SYS|tag`, URL-encoded for a query string.
pub fn ident_query(tag: &str) -> String {
    format!("identifier={}%7C{tag}", SYS.replace(':', "%3A"))
}

/// Creates a Patient tagged `tag` and returns its id (one recorded step).
pub fn create_patient(s: &mut Session, tag: &str) -> Result<String> {
    s.send(Call::post("Patient").json(&patient(tag)))?
        .expect(201)?
        .id()
}

/// Creates an Observation about `Patient/{pid}` and returns its id (one recorded step).
pub fn create_observation(s: &mut Session, tag: &str, pid: &str, value: u32) -> Result<String> {
    let obs = observation(tag, &format!("Patient/{pid}"), value);
    s.send(Call::post("Observation").json(&obs))?
        .expect(201)?
        .id()
}

/// An instant just before the writes that follow (they are strictly later), redacted as `<since>`.
pub fn since(s: &mut Session) -> String {
    std::thread::sleep(Duration::from_millis(5));
    let t = crate::fhir_instant(SystemTime::now());
    std::thread::sleep(Duration::from_millis(5));
    s.redact(t.clone(), "<since>");
    t
}

/// The `entry.response.location` values of a batch/transaction response.
pub fn response_locations(r: &Resp) -> Result<Vec<String>> {
    Ok(locations_in(&r.json()?))
}

/// The `entry.response.location` values of a batch/transaction response Bundle.
pub fn locations_in(bundle: &Value) -> Vec<String> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .filter_map(|e| e.pointer("/response/location").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
