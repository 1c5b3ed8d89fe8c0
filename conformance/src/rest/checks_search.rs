//! Checks of search: GET and POST `_search`, JSON and XML, paging via next links, includes, errors.

use anyhow::Result;
use serde_json::json;

use super::fixtures::{create_observation, create_patient, ident_query, patient};
use super::transcript::{Call, Client, Session, Transcript, FHIR_XML};
use super::Check;

/// The checks of this module.
pub fn checks() -> Vec<Check> {
    let c = |name, format, run| Check { name, format, run };
    vec![
        c("search-get", "JSON", search_get),
        c("search-parameter-types", "JSON", search_parameter_types),
        c("search-post-form", "JSON", search_post),
        c("search-format-xml", "XML", search_format_xml),
        c("search-accept-xml", "XML", search_accept_xml),
        c("paging-count-next-json", "JSON", paging_json),
        c("paging-count-next-xml", "XML", paging_xml),
        c("paging-post-search", "JSON", paging_post),
        c("search-count-summary", "JSON", search_count),
        c("search-include", "JSON", search_include),
        c("search-revinclude", "JSON", search_revinclude),
        c("search-unknown-parameter", "JSON", search_unknown),
        c("search-compartment", "JSON", search_compartment),
    ]
}

/// Three Patients tagged `n` with families `{n}a`, `{n}b`, `{n}c`; returns their ids.
fn three_patients(s: &mut Session, n: &str) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for (suffix, gender) in [("a", "male"), ("b", "female"), ("c", "male")] {
        let mut p = patient(n);
        p["name"][0]["family"] = json!(format!("{n}{suffix}"));
        p["gender"] = json!(gender);
        ids.push(s.send(Call::post("Patient").json(&p))?.expect(201)?.id()?);
    }
    Ok(ids)
}

/// A Patient tagged `n` with `count` heart-rate Observations; returns the patient id.
fn patient_with_observations(s: &mut Session, n: &str, count: u32) -> Result<String> {
    let pid = create_patient(s, n)?;
    for i in 0..count {
        create_observation(s, n, &pid, 60 + i)?;
    }
    Ok(pid)
}

fn search_get(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let ids = three_patients(&mut s, n)?;
    let q = ident_query(n);
    for target in [
        format!("Patient?{q}"),
        format!("Patient?family={n}&gender=male"),
        format!("Patient?{q}&_sort=-family"),
        format!("Patient?_id={}", ids[1]),
        format!("Patient?{q}&_summary=true"),
    ] {
        s.send(Call::get(target))?.expect(200)?;
    }
    Ok(s.finish())
}

fn search_parameter_types(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let pid = patient_with_observations(&mut s, n, 3)?;
    let part = n.get(1..9).unwrap_or(n).to_owned();
    s.redact(part.clone(), "<nonce-part>");
    for target in [
        format!("Patient?family:exact={n}"),
        format!("Patient?family:contains={part}"),
        format!(
            "Patient?{}&birthdate=ge1979-12-31&birthdate=lt1980-01-02",
            ident_query(n)
        ),
        format!("Observation?subject=Patient/{pid}&code=http://loinc.org%7C8867-4"),
        format!("Observation?subject:Patient={pid}&value-quantity=gt60"),
        format!("Observation?patient={pid}&_sort=-value-quantity"),
    ] {
        s.send(Call::get(target))?.expect(200)?;
    }
    Ok(s.finish())
}

fn search_post(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    three_patients(&mut s, n)?;
    let q = ident_query(n);
    s.send(Call::post("Patient/_search").form(&q))?
        .expect(200)?;
    s.send(Call::post("Patient/_search?gender=female").form(&q))?
        .expect(200)?;
    s.send(Call::post("Patient/_search").form(&format!("family={n}b&_count=5")))?
        .expect(200)?;
    Ok(s.finish())
}

fn search_format_xml(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    three_patients(&mut s, n)?;
    let q = ident_query(n);
    s.send(Call::get(format!("Patient?{q}&_format=xml")))?
        .expect(200)?;
    s.send(Call::get(format!(
        "Patient?{q}&_format=application/fhir%2Bxml"
    )))?
    .expect(200)?;
    s.send(Call::get(format!("Patient?{q}&_format=xml&_count=0")))?
        .expect(200)?;
    Ok(s.finish())
}

fn search_accept_xml(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    three_patients(&mut s, n)?;
    let q = ident_query(n);
    s.send(Call::get(format!("Patient?{q}")).accept_xml())?
        .expect(200)?;
    s.send(Call::post("Patient/_search").accept_xml().form(&q))?
        .expect(200)?;
    s.send(Call::get(format!("Patient?{q}")).header("Accept", "application/xml"))?
        .expect(200)?;
    Ok(s.finish())
}

fn paging_json(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let pid = patient_with_observations(&mut s, n, 7)?;
    let first = s
        .send(Call::get(format!(
            "Observation?subject=Patient/{pid}&_count=3"
        )))?
        .expect(200)?;
    s.follow_pages(&first, &[], 2)?;
    // _count above the total: one page, no next link
    s.send(Call::get(format!(
        "Observation?subject=Patient/{pid}&_count=50"
    )))?
    .expect(200)?;
    Ok(s.finish())
}

fn paging_xml(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let pid = patient_with_observations(&mut s, n, 5)?;
    let first = s
        .send(Call::get(format!("Observation?subject=Patient/{pid}&_count=2")).accept_xml())?
        .expect(200)?;
    s.follow_pages(&first, &[("Accept", FHIR_XML)], 2)?;
    let first = s
        .send(Call::get(format!(
            "Observation?subject=Patient/{pid}&_count=4&_format=xml"
        )))?
        .expect(200)?;
    s.follow_next(&first, &[])?;
    Ok(s.finish())
}

fn paging_post(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let pid = patient_with_observations(&mut s, n, 5)?;
    let first = s
        .send(Call::post("Observation/_search").form(&format!("subject=Patient%2F{pid}&_count=2")))?
        .expect(200)?;
    s.follow_pages(&first, &[], 2)?;
    Ok(s.finish())
}

fn search_count(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let pid = patient_with_observations(&mut s, n, 3)?;
    for target in [
        format!("Observation?subject=Patient/{pid}&_summary=count"),
        format!("Observation?subject=Patient/{pid}&_count=0"),
        format!("Observation?subject=Patient/{pid}&_count=5000"),
        format!("Observation?subject=Patient/{pid}&_total=accurate&_count=1"),
    ] {
        s.send(Call::get(target))?.expect(200)?;
    }
    Ok(s.finish())
}

fn search_include(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let pid = patient_with_observations(&mut s, n, 3)?;
    let first = s
        .send(Call::get(format!(
            "Observation?subject=Patient/{pid}&_include=Observation:subject&_count=2"
        )))?
        .expect(200)?;
    s.follow_next(&first, &[])?;
    s.send(Call::get(format!(
        "Observation?subject=Patient/{pid}&_include=*&_format=xml"
    )))?
    .expect(200)?;
    Ok(s.finish())
}

fn search_revinclude(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let pid = patient_with_observations(&mut s, n, 4)?;
    s.send(Call::get(format!("Patient?_id={pid}&_revinclude=Observation:subject")).unordered())?
        .expect(200)?;
    s.send(
        Call::get(format!(
            "Patient?_id={pid}&_revinclude=Observation:subject&_count=2"
        ))
        .unordered(),
    )?
    .expect(200)?;
    Ok(s.finish())
}

fn search_unknown(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    create_patient(&mut s, n)?;
    let q = ident_query(n);
    s.send(Call::get(format!("Patient?{q}&foo=bar")))?
        .expect(200)?;
    s.send(Call::get(format!("Patient?{q}&foo=bar")).header("Prefer", "handling=strict"))?
        .expect(400)?;
    s.send(Call::get(format!("Patient?{q}&_include=Patient:nope")))?
        .expect(200)?;
    s.send(Call::get(format!("Patient?{q}&birthdate=notadate")))?
        .expect(400)?;
    s.send(Call::get(format!(
        "Patient?{q}&birthdate=notadate&_format=xml"
    )))?
    .expect(400)?;
    Ok(s.finish())
}

fn search_compartment(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let pid = patient_with_observations(&mut s, n, 3)?;
    // _count above the total so that no (compartment-dropping) next link is followed
    s.send(Call::get(format!("Patient/{pid}/Observation?_count=50")))?
        .expect(200)?;
    s.send(Call::get(format!(
        "Patient/{pid}/Observation?_count=50&value-quantity=gt60"
    )))?
    .expect(200)?;
    Ok(s.finish())
}
