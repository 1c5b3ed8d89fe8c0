//! Checks of operations: `$everything`, `$export` (async, with its status URL), unknown ops.
//!
//! `$validate` is not here: the gateway answers it with its own validator, so it is not a pass-through
//! (`tests/e2e/validation.rs` covers it).

use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::{json, Value};

use super::fixtures::{create_observation, create_patient, since};
use super::transcript::{Call, Client, Session, Transcript};
use super::Check;

/// The checks of this module.
pub fn checks() -> Vec<Check> {
    let c = |name, format, run| Check { name, format, run };
    vec![
        c("operation-everything", "JSON+XML", everything),
        c("operation-unknown", "JSON", unknown_op),
        c("operation-export-async", "JSON", export),
    ]
}

fn everything(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let pid = create_patient(&mut s, n)?;
    for v in [61, 62, 63] {
        create_observation(&mut s, n, &pid, v)?;
    }
    s.send(Call::get(format!("Patient/{pid}/$everything")).unordered())?
        .expect(200)?;
    s.send(Call::post(format!("Patient/{pid}/$everything")).unordered())?
        .expect(200)?;
    s.send(Call::get(format!("Patient/{pid}/$everything?_count=1")).unordered())?
        .expect(200)?;
    s.send(
        Call::get(format!("Patient/{pid}/$everything"))
            .accept_xml()
            .unordered(),
    )?
    .expect(200)?;
    s.send(Call::get("Patient/$everything"))?.expect(400)?;
    s.send(Call::get(format!("Patient/{n}-missing/$everything")))?
        .expect(404)?;
    Ok(s.finish())
}

fn unknown_op(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let pid = create_patient(&mut s, n)?;
    s.send(Call::get(format!("Patient/{pid}/$foo")))?
        .expect(404)?;
    s.send(Call::post("Patient/$foo").json(&json!({"resourceType": "Parameters"})))?
        .expect(404)?;
    s.send(Call::get(format!("Patient/{pid}/$foo?_format=xml")))?
        .expect(404)?;
    Ok(s.finish())
}

/// `Patient/$export` with `_since`, then its status URL (polled until done; only the final answer is
/// compared), then the file it lists.
fn export(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let t0 = since(&mut s);
    create_patient(&mut s, n)?;
    s.send(Call::get(format!(
        "Patient/$export?_type=Patient&_since={t0}"
    )))?
    .expect(400)?;
    let kicked = s
        .send(
            Call::get(format!("Patient/$export?_type=Patient&_since={t0}"))
                .header("Prefer", "respond-async"),
        )?
        .expect(202)?;
    let status_url = kicked
        .header("content-location")
        .ok_or_else(|| anyhow!("$export: no Content-Location"))?
        .to_owned();
    let job = status_url.rsplit('/').next().unwrap_or("").to_owned();
    s.redact(job, "<job>");
    let mut done = None;
    for _ in 0..60 {
        let r = s.send_unrecorded(Call::get(status_url.as_str()))?;
        if r.status != 202 {
            done = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    done.ok_or_else(|| anyhow!("$export still running after 12 s"))?;
    let status = s.send(Call::get(status_url.as_str()))?.expect(200)?;
    let files: Vec<String> = status
        .json()?
        .get("output")
        .and_then(Value::as_array)
        .map(|o| {
            o.iter()
                .filter_map(|f| f.get("url").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    anyhow::ensure!(
        files.len() == 1,
        "expected 1 export file, got {}",
        files.len()
    );
    for f in files {
        s.send(Call::get(f))?.expect(200)?;
    }
    Ok(s.finish())
}
