//! Checks of batch and transaction Bundles (JSON and XML, urn:uuid references, conditionals, rollback).

use anyhow::{anyhow, Result};
use serde_json::json;

use super::fixtures::{
    bundle, create_patient, entry, ident_query, observation, patient, patient_xml_inner,
    response_locations, urn, SYS,
};
use super::transcript::{Call, Client, Session, Transcript};
use super::Check;

/// The checks of this module.
pub fn checks() -> Vec<Check> {
    let c = |name, format, run| Check { name, format, run };
    vec![
        c("batch", "JSON", batch),
        c("batch-urn-uuid-kept", "JSON", batch_urn_uuid),
        c("transaction-urn-uuid", "JSON", transaction_urn_uuid),
        c("transaction-conditional", "JSON", transaction_conditional),
        c("transaction-xml", "XML", transaction_xml),
        c("transaction-rollback", "JSON", transaction_rollback),
        c("bundle-prefer-minimal", "JSON", bundle_minimal),
        c("bundle-type-errors", "JSON", bundle_errors),
    ]
}

fn batch(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let keep = create_patient(&mut s, n)?;
    let gone = create_patient(&mut s, n)?;
    let mut upd = patient(n);
    upd["id"] = json!(keep);
    upd["gender"] = json!("female");
    let b = bundle(
        "batch",
        vec![
            entry("POST", "Patient", None, Some(patient(n))),
            entry("GET", &format!("Patient/{keep}"), None, None),
            entry("GET", &format!("Patient?{}", ident_query(n)), None, None),
            entry("DELETE", &format!("Patient/{gone}"), None, None),
            entry("GET", &format!("Patient/{n}-missing"), None, None),
            entry("PUT", &format!("Patient/{keep}"), None, Some(upd)),
        ],
    );
    s.send(Call::post("").json(&b))?.expect(200)?;
    s.send(Call::get(format!("Patient?{}", ident_query(n))))?
        .expect(200)?;
    s.send(Call::post("").accept_xml().json(&b))?.expect(200)?;
    Ok(s.finish())
}

fn batch_urn_uuid(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let b = bundle(
        "batch",
        vec![
            entry("POST", "Patient", Some(&urn(1)), Some(patient(n))),
            entry(
                "POST",
                "Observation",
                Some(&urn(2)),
                Some(observation(n, &urn(1), 65)),
            ),
        ],
    );
    let r = s.send(Call::post("").json(&b))?.expect(200)?;
    for loc in response_locations(&r)? {
        s.send(Call::get(loc))?.expect(200)?;
    }
    Ok(s.finish())
}

fn transaction_urn_uuid(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let b = bundle(
        "transaction",
        vec![
            entry("POST", "Patient", Some(&urn(1)), Some(patient(n))),
            entry(
                "POST",
                "Observation",
                Some(&urn(2)),
                Some(observation(n, &urn(1), 61)),
            ),
            entry(
                "POST",
                "Observation",
                Some(&urn(3)),
                Some(observation(n, &urn(1), 62)),
            ),
        ],
    );
    let r = s.send(Call::post("").json(&b))?.expect(200)?;
    let locs = response_locations(&r)?;
    anyhow::ensure!(locs.len() == 3, "expected 3 locations, got {}", locs.len());
    for loc in &locs {
        s.send(Call::get(loc.as_str()))?.expect(200)?;
    }
    let pid = super::transcript::id_from_url(&locs[0])
        .ok_or_else(|| anyhow!("no patient id in {}", locs[0]))?;
    s.send(Call::get(format!("Observation?subject=Patient/{pid}")))?
        .expect(200)?;
    Ok(s.finish())
}

fn transaction_conditional(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    create_patient(&mut s, n)?;
    let cond = format!("identifier={SYS}|{n}");
    let mut existing = entry("POST", "Patient", Some(&urn(1)), Some(patient(n)));
    existing["request"]["ifNoneExist"] = json!(cond);
    let other_tag = format!("{n}-other");
    let mut created = entry("POST", "Patient", Some(&urn(2)), Some(patient(&other_tag)));
    created["request"]["ifNoneExist"] = json!(format!("identifier={SYS}|{other_tag}"));
    let new_tag = format!("{n}-new");
    let b = bundle(
        "transaction",
        vec![
            existing,
            created,
            entry(
                "POST",
                "Observation",
                Some(&urn(3)),
                Some(observation(n, &format!("Patient?{cond}"), 66)),
            ),
            entry(
                "PUT",
                &format!("Patient?identifier={SYS}|{new_tag}"),
                Some(&urn(4)),
                Some(patient(&new_tag)),
            ),
        ],
    );
    let r = s.send(Call::post("").json(&b))?.expect(200)?;
    for loc in response_locations(&r)? {
        s.send(Call::get(loc))?.expect(200)?;
    }
    // the same transaction again: everything conditional now matches
    s.send(Call::post("").json(&b))?.expect(200)?;
    Ok(s.finish())
}

fn observation_xml(n: &str, subject: &str, value: u32) -> String {
    format!(
        "<Observation xmlns=\"http://hl7.org/fhir\"><identifier><system value=\"{SYS}\"/><value value=\"{n}\"/></identifier><status value=\"final\"/><code><coding><system value=\"http://loinc.org\"/><code value=\"8867-4\"/></coding><text value=\"Heart rate\"/></code><subject><reference value=\"{subject}\"/></subject><valueQuantity><value value=\"{value}\"/><unit value=\"/min\"/></valueQuantity></Observation>"
    )
}

fn xml_entry(full_url: &str, resource: &str, method: &str, url: &str) -> String {
    format!(
        "<entry><fullUrl value=\"{full_url}\"/><resource>{resource}</resource><request><method value=\"{method}\"/><url value=\"{url}\"/></request></entry>"
    )
}

fn transaction_xml(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"transaction\"/>{}{}</Bundle>",
        xml_entry(&urn(1), &patient_xml_inner(n, None, "female"), "POST", "Patient"),
        xml_entry(&urn(2), &observation_xml(n, &urn(1), 61), "POST", "Observation"),
    );
    let r = s
        .send(Call::post("").accept_xml().xml(&body))?
        .expect(200)?;
    let text = r.text();
    anyhow::ensure!(
        text.contains("transaction-response"),
        "not a transaction-response"
    );
    s.send(Call::get(format!(
        "Observation?{}&_include=Observation:subject&_format=xml",
        ident_query(n)
    )))?
    .expect(200)?;
    // the same Bundle answered in JSON
    s.send(Call::post("").xml(&body))?.expect(200)?;
    Ok(s.finish())
}

fn transaction_rollback(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let unresolved = bundle(
        "transaction",
        vec![
            entry("POST", "Patient", Some(&urn(1)), Some(patient(n))),
            entry(
                "POST",
                "Observation",
                Some(&urn(2)),
                Some(observation(n, &urn(9), 61)),
            ),
        ],
    );
    s.send(Call::post("").json(&unresolved))?.expect(400)?;
    let failing_get = bundle(
        "transaction",
        vec![
            entry("POST", "Patient", Some(&urn(1)), Some(patient(n))),
            entry("GET", &format!("Patient/{n}-missing"), None, None),
        ],
    );
    s.send(Call::post("").json(&failing_get))?.expect(404)?;
    s.send(Call::post("?_format=xml").json(&unresolved))?
        .expect(400)?;
    // nothing was committed
    s.send(Call::get(format!("Patient?{}", ident_query(n))))?
        .expect(200)?;
    Ok(s.finish())
}

fn bundle_minimal(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    for kind in ["transaction", "batch"] {
        let b = bundle(
            kind,
            vec![
                entry("POST", "Patient", Some(&urn(1)), Some(patient(n))),
                entry(
                    "POST",
                    "Observation",
                    Some(&urn(2)),
                    Some(observation(n, &urn(1), 61)),
                ),
            ],
        );
        s.send(Call::post("").header("Prefer", "return=minimal").json(&b))?
            .expect(200)?;
    }
    Ok(s.finish())
}

fn bundle_errors(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let collection = bundle(
        "collection",
        vec![json!({"fullUrl": urn(1), "resource": patient(n)})],
    );
    s.send(Call::post("").json(&collection))?.expect(400)?;
    // No `entry: []`: an empty array is not valid FHIR JSON, and the gateway refuses it itself.
    let message = json!({"resourceType": "Bundle", "type": "message"});
    s.send(Call::post("").json(&message))?.expect(400)?;
    // An entry the upstream fails (a read of a missing resource) while the others proceed.
    let batch_with_bad_entry = bundle(
        "batch",
        vec![
            json!({"request": {"method": "GET", "url": format!("Patient/{n}-missing")}}),
            entry("POST", "Patient", None, Some(patient(n))),
        ],
    );
    s.send(Call::post("").json(&batch_with_bad_entry))?
        .expect(200)?;
    Ok(s.finish())
}
