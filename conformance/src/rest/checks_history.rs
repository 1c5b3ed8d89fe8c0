//! Checks of history: instance, type and system level (type/system scoped to the run with `_since`).

use anyhow::Result;
use serde_json::json;

use super::fixtures::{create_observation, create_patient, observation, patient, since};
use super::transcript::{Call, Client, Session, Transcript};
use super::Check;

/// The checks of this module.
pub fn checks() -> Vec<Check> {
    let c = |name, format, run| Check { name, format, run };
    vec![
        c("history-instance", "JSON+XML", history_instance),
        c("history-instance-paging", "JSON", history_instance_paging),
        c("history-type", "JSON+XML", history_type),
        c("history-system", "JSON+XML", history_system),
    ]
}

fn history_instance(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let path = format!("Patient/{id}");
    let mut p = patient(n);
    p["id"] = json!(id);
    p["gender"] = json!("female");
    s.send(Call::put(&path).json(&p))?.expect(200)?;
    let mid = since(&mut s);
    let ops = br#"[{"op":"replace","path":"/gender","value":"other"}]"#.to_vec();
    s.send(Call::patch(&path).body("application/json-patch+json", ops))?
        .expect(200)?;
    s.send(Call::delete(&path))?.expect(200)?;
    s.send(Call::get(format!("{path}/_history")))?.expect(200)?;
    s.send(Call::get(format!("{path}/_history?_format=xml")))?
        .expect(200)?;
    s.send(Call::get(format!("{path}/_history?_since={mid}")))?
        .expect(200)?;
    Ok(s.finish())
}

fn history_instance_paging(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let path = format!("Patient/{id}");
    for (i, g) in ["female", "other", "unknown", "male"].iter().enumerate() {
        let mut p = patient(n);
        p["id"] = json!(id);
        p["gender"] = json!(g);
        p["name"][0]["given"] = json!([format!("V{}", i + 2)]);
        s.send(Call::put(&path).json(&p))?.expect(200)?;
    }
    let first = s
        .send(Call::get(format!("{path}/_history?_count=2")))?
        .expect(200)?;
    s.follow_pages(&first, &[], 2)?;
    Ok(s.finish())
}

fn history_type(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let t0 = since(&mut s);
    let pid = create_patient(&mut s, n)?;
    let o1 = create_observation(&mut s, n, &pid, 70)?;
    let o2 = create_observation(&mut s, n, &pid, 71)?;
    let mut o = observation(n, &format!("Patient/{pid}"), 72);
    o["id"] = json!(o1);
    s.send(Call::put(format!("Observation/{o1}")).json(&o))?
        .expect(200)?;
    s.send(Call::delete(format!("Observation/{o2}")))?
        .expect(200)?;
    s.send(Call::get(format!("Observation/_history?_since={t0}")))?
        .expect(200)?;
    s.send(Call::get(format!(
        "Observation/_history?_since={t0}&_format=xml"
    )))?
    .expect(200)?;
    s.send(Call::get(format!("Patient/_history?_since={t0}")))?
        .expect(200)?;
    Ok(s.finish())
}

fn history_system(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let t0 = since(&mut s);
    let pid = create_patient(&mut s, n)?;
    let oid = create_observation(&mut s, n, &pid, 80)?;
    let mut p = patient(n);
    p["id"] = json!(pid);
    p["active"] = json!(false);
    s.send(Call::put(format!("Patient/{pid}")).json(&p))?
        .expect(200)?;
    s.send(Call::delete(format!("Observation/{oid}")))?
        .expect(200)?;
    s.send(Call::get(format!("_history?_since={t0}")))?
        .expect(200)?;
    s.send(Call::get(format!("_history?_since={t0}")).accept_xml())?
        .expect(200)?;
    s.send(Call::get(format!("_history?_since={t0}&_count=10")))?
        .expect(200)?;
    Ok(s.finish())
}
