//! Checks of `/metadata`, content negotiation (Accept and `_format`, JSON and XML) and error outcomes.

use anyhow::Result;
use serde_json::json;

use super::fixtures::{create_patient, patient, patient_xml, SYS};
use super::transcript::{Call, Client, Session, Transcript, FHIR_JSON, FHIR_XML};
use super::Check;

/// The checks of this module.
pub fn checks() -> Vec<Check> {
    let c = |name, format, run| Check { name, format, run };
    vec![
        c("metadata-json", "JSON", metadata_json),
        c("metadata-xml", "XML", metadata_xml),
        c("negotiation-json", "JSON", negotiation_json),
        c("negotiation-xml", "XML", negotiation_xml),
        c("negotiation-not-acceptable", "JSON+XML", negotiation_errors),
        c("request-content-types", "JSON", request_content_types),
        c("errors-json", "JSON", errors_json),
        c("errors-xml", "XML", errors_xml),
    ]
}

fn metadata_json(c: &Client, base: &str, _n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    s.send(Call::get("metadata"))?.expect(200)?;
    s.send(Call::get("metadata").header("Accept", FHIR_JSON))?
        .expect(200)?;
    s.send(Call::get("metadata?_format=json"))?.expect(200)?;
    s.send(Call::head("metadata"))?;
    Ok(s.finish())
}

fn metadata_xml(c: &Client, base: &str, _n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    s.send(Call::get("metadata?_format=xml"))?.expect(200)?;
    s.send(Call::get("metadata").accept_xml())?.expect(200)?;
    Ok(s.finish())
}

fn negotiation_json(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let path = format!("Patient/{id}");
    for accept in [
        "application/json",
        FHIR_JSON,
        "application/fhir+json; fhirVersion=4.0",
        "*/*",
        "application/fhir+xml, application/fhir+json;q=0.5",
    ] {
        s.send(Call::get(&path).header("Accept", accept))?
            .expect(200)?;
    }
    for format in ["json", "application/fhir%2Bjson", "application/json"] {
        s.send(Call::get(format!("{path}?_format={format}")))?
            .expect(200)?;
    }
    // _format wins over Accept
    s.send(Call::get(format!("{path}?_format=json")).accept_xml())?
        .expect(200)?;
    Ok(s.finish())
}

fn negotiation_xml(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let path = format!("Patient/{id}");
    for accept in [
        FHIR_XML,
        "application/xml",
        "text/xml",
        "application/fhir+xml;q=0.9",
    ] {
        s.send(Call::get(&path).header("Accept", accept))?
            .expect(200)?;
    }
    for format in [
        "xml",
        "application/fhir%2Bxml",
        "application/xml",
        "text/xml",
    ] {
        s.send(Call::get(format!("{path}?_format={format}")))?
            .expect(200)?;
    }
    s.send(Call::get(format!("{path}?_format=xml")).header("Accept", FHIR_JSON))?
        .expect(200)?;
    s.send(Call::get(format!("{path}/_history/1?_format=xml")))?
        .expect(200)?;
    Ok(s.finish())
}

fn negotiation_errors(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let path = format!("Patient/{id}");
    s.send(Call::get(&path).header("Accept", "text/html"))?
        .expect(406)?;
    s.send(Call::get(format!("{path}?_format=ttl")))?
        .expect(406)?;
    // a type without an XML model: created in JSON, not renderable as XML
    let mp = json!({"resourceType": "MedicinalProduct",
        "identifier": [{"system": SYS, "value": n}],
        "name": [{"productName": format!("Conformance {n}")}]});
    let r = s
        .send(Call::post("MedicinalProduct").json(&mp))?
        .expect(201)?;
    let mid = r.id()?;
    s.send(Call::get(format!("MedicinalProduct/{mid}")))?
        .expect(200)?;
    s.send(Call::get(format!("MedicinalProduct/{mid}?_format=xml")))?
        .expect(406)?;
    Ok(s.finish())
}

fn request_content_types(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let body = serde_json::to_vec(&patient(n))?;
    for ct in [
        "application/fhir+json; fhirVersion=4.0",
        "application/json",
        "application/fhir+json; charset=utf-8",
    ] {
        s.send(Call::post("Patient").body(ct, body.clone()))?
            .expect(201)?;
    }
    s.send(Call::post("Patient").body("text/xml", patient_xml(n, None, "female")))?
        .expect(201)?;
    Ok(s.finish())
}

fn errors_json(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    // Only errors the upstream itself decides: content that is not valid FHIR never reaches it (the
    // gateway answers 400/422 itself, covered by tests/e2e/validation.rs and errors.rs).
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let no_id = patient(n);
    s.send(Call::put(format!("Patient/{id}")).json(&no_id))?
        .expect(400)?;
    let mut other_id = patient(n);
    other_id["id"] = json!(format!("{n}-other"));
    s.send(Call::put(format!("Patient/{id}")).json(&other_id))?
        .expect(400)?;
    s.send(Call::get(format!("?_id={id}")))?.expect(400)?;
    s.send(Call::get(format!("Patient/{id}/_history/9?_format=json")))?
        .expect(404)?;
    Ok(s.finish())
}

fn errors_xml(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    s.send(Call::get(format!("Patient/{n}-missing?_format=xml")))?
        .expect(404)?;
    s.send(Call::get(format!("Patient/{n}-missing")).accept_xml())?
        .expect(404)?;
    // A valid resource the upstream refuses: an update whose body id differs from the URL's.
    let id = create_patient(&mut s, n)?;
    s.send(
        Call::put(format!("Patient/{id}"))
            .accept_xml()
            .xml(&format!(
                "<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"{n}-other\"/></Patient>"
            )),
    )?
    .expect(400)?;
    Ok(s.finish())
}
