//! Checks of the instance interactions: create, read, vread, update, patch, delete (and conditionals).

use anyhow::{anyhow, Result};
use serde_json::{json, Value};

use super::fixtures::{create_patient, ident_query, patient, patient_xml, SYS};
use super::transcript::{Call, Client, Session, Transcript, FHIR_JSON};
use super::Check;

/// The checks of this module.
pub fn checks() -> Vec<Check> {
    let c = |name, format, run| Check { name, format, run };
    vec![
        c("create", "JSON", create),
        c("create-prefer-return", "JSON", create_prefer),
        c("create-xml-body", "XML", create_xml),
        c(
            "conditional-create-if-none-exist",
            "JSON",
            create_if_none_exist,
        ),
        c("read-head-summary", "JSON", read),
        c("read-if-none-match-304", "JSON", read_if_none_match),
        c("read-not-found", "JSON", read_not_found),
        c("vread", "JSON", vread),
        c("update", "JSON", update),
        c("update-create-client-id", "JSON", update_upsert),
        c("update-if-match", "JSON", update_if_match),
        c("update-stale-if-match-412", "JSON", update_stale_if_match),
        c("update-xml-body", "XML", update_xml),
        c("conditional-update", "JSON", conditional_update),
        c("patch-json-patch", "JSON", patch_json),
        c("patch-fhirpath-patch", "JSON", patch_fhirpath),
        c("patch-if-match", "JSON", patch_if_match),
        c("patch-invalid-body-415", "JSON", patch_unsupported),
        c("delete-then-read", "JSON", delete_then_read),
        c("conditional-delete", "JSON", conditional_delete),
    ]
}

/// `patient(tag)` with `id` set and `gender` changed, for updates.
fn patient_with(tag: &str, id: &str, gender: &str) -> Value {
    let mut p = patient(tag);
    p["id"] = json!(id);
    p["gender"] = json!(gender);
    p
}

fn json_patch(ops: Value) -> Vec<u8> {
    serde_json::to_vec(&ops).unwrap_or_default()
}

const JSON_PATCH: &str = "application/json-patch+json";

fn create(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let r = s
        .send(Call::post("Patient").json(&patient(n)))?
        .expect(201)?;
    let loc = r
        .header("location")
        .ok_or_else(|| anyhow!("create: no Location"))?
        .to_owned();
    s.send(Call::get(loc))?.expect(200)?;
    Ok(s.finish())
}

fn create_prefer(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    for prefer in [
        "return=minimal",
        "return=OperationOutcome",
        "return=representation",
    ] {
        s.send(
            Call::post("Patient")
                .header("Prefer", prefer)
                .json(&patient(n)),
        )?
        .expect(201)?;
    }
    Ok(s.finish())
}

fn create_xml(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let r = s
        .send(
            Call::post("Patient")
                .accept_xml()
                .xml(&patient_xml(n, None, "female")),
        )?
        .expect(201)?;
    let id = r.location_id()?;
    s.send(Call::get(format!("Patient/{id}?_format=xml")))?
        .expect(200)?;
    s.send(Call::get(format!("Patient/{id}")))?.expect(200)?;
    // an XML body answered in JSON (no Accept)
    s.send(Call::post("Patient").body("application/xml", patient_xml(n, None, "other")))?
        .expect(201)?;
    Ok(s.finish())
}

fn create_if_none_exist(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let cond = format!("identifier={SYS}|{n}");
    let conditional = || Call::post("Patient").header("If-None-Exist", cond.clone());
    s.send(conditional().json(&patient(n)))?.expect(201)?;
    s.send(conditional().json(&patient(n)))?.expect(200)?;
    s.send(Call::post("Patient").json(&patient(n)))?
        .expect(201)?;
    s.send(conditional().json(&patient(n)))?.expect(412)?;
    s.send(Call::get(format!("Patient?{}", ident_query(n))))?
        .expect(200)?;
    Ok(s.finish())
}

fn read(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    s.send(Call::get(format!("Patient/{id}")))?.expect(200)?;
    s.send(Call::head(format!("Patient/{id}")))?.expect(200)?;
    s.send(Call::get(format!("Patient/{id}?_summary=true")))?
        .expect(200)?;
    Ok(s.finish())
}

fn read_if_none_match(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let path = format!("Patient/{id}");
    s.send(Call::get(&path).header("If-None-Match", "W/\"1\""))?
        .expect(304)?;
    s.send(Call::get(&path).header("If-None-Match", "\"1\""))?
        .expect(304)?;
    s.send(Call::get(&path).header("If-None-Match", "W/\"2\""))?
        .expect(200)?;
    Ok(s.finish())
}

fn read_not_found(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    s.send(Call::get(format!("Patient/{n}-missing")))?
        .expect(404)?;
    s.send(Call::get(format!("Patient/{n}-missing/_history/1")))?
        .expect(404)?;
    s.send(Call::get(format!("Patient/{n}-missing/_history")))?
        .expect(200)?;
    Ok(s.finish())
}

fn vread(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    s.send(Call::put(format!("Patient/{id}")).json(&patient_with(n, &id, "female")))?
        .expect(200)?;
    for v in [1, 2] {
        s.send(Call::get(format!("Patient/{id}/_history/{v}")))?
            .expect(200)?;
    }
    s.send(Call::get(format!("Patient/{id}/_history/9")))?
        .expect(404)?;
    Ok(s.finish())
}

fn update(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let r = s
        .send(Call::put(format!("Patient/{id}")).json(&patient_with(n, &id, "female")))?
        .expect(200)?;
    s.send(Call::get(
        r.header("location")
            .ok_or_else(|| anyhow!("update: no Location"))?,
    ))?
    .expect(200)?;
    s.send(Call::get(format!("Patient/{id}")))?.expect(200)?;
    Ok(s.finish())
}

fn update_upsert(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = format!("{n}-up");
    s.send(Call::put(format!("Patient/{id}")).json(&patient_with(n, &id, "male")))?
        .expect(201)?;
    s.send(Call::put(format!("Patient/{id}")).json(&patient_with(n, &id, "female")))?
        .expect(200)?;
    s.send(Call::put(format!("Patient/{id}")).json(&patient(n)))?
        .expect(400)?;
    s.send(Call::put(format!("Patient/{id}")).json(&patient_with(n, "other-id", "male")))?
        .expect(400)?;
    s.send(Call::get(format!("Patient/{id}")))?.expect(200)?;
    Ok(s.finish())
}

fn update_if_match(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    s.send(
        Call::put(format!("Patient/{id}"))
            .header("If-Match", "W/\"1\"")
            .json(&patient_with(n, &id, "female")),
    )?
    .expect(200)?;
    s.send(
        Call::put(format!("Patient/{id}"))
            .header("If-Match", "W/\"2\"")
            .json(&patient_with(n, &id, "other")),
    )?
    .expect(200)?;
    Ok(s.finish())
}

fn update_stale_if_match(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    s.send(Call::put(format!("Patient/{id}")).json(&patient_with(n, &id, "female")))?
        .expect(200)?;
    s.send(
        Call::put(format!("Patient/{id}"))
            .header("If-Match", "W/\"1\"")
            .json(&patient_with(n, &id, "other")),
    )?
    .expect(412)?;
    s.send(Call::get(format!("Patient/{id}")))?.expect(200)?;
    Ok(s.finish())
}

fn update_xml(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let r = s
        .send(Call::post("Patient").xml(&patient_xml(n, None, "female")))?
        .expect(201)?;
    let id = r.location_id()?;
    s.send(
        Call::put(format!("Patient/{id}"))
            .accept_xml()
            .xml(&patient_xml(n, Some(&id), "male")),
    )?
    .expect(200)?;
    s.send(Call::get(format!("Patient/{id}?_format=xml")))?
        .expect(200)?;
    Ok(s.finish())
}

fn conditional_update(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let target = format!("Patient?{}", ident_query(n));
    s.send(Call::put(&target).json(&patient(n)))?.expect(201)?;
    let mut p = patient(n);
    p["gender"] = json!("female");
    s.send(Call::put(&target).json(&p))?.expect(200)?;
    s.send(Call::post("Patient").json(&patient(n)))?
        .expect(201)?;
    s.send(Call::put(&target).json(&p))?.expect(412)?;
    Ok(s.finish())
}

fn patch_json(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let path = format!("Patient/{id}");
    let ops = json!([{"op": "replace", "path": "/gender", "value": "female"},
                     {"op": "add", "path": "/active", "value": false}]);
    s.send(Call::patch(&path).body(JSON_PATCH, json_patch(ops)))?
        .expect(200)?;
    let failing = json!([{"op": "test", "path": "/gender", "value": "male"}]);
    s.send(Call::patch(&path).body(JSON_PATCH, json_patch(failing)))?
        .expect(422)?;
    s.send(Call::get(&path))?.expect(200)?;
    Ok(s.finish())
}

fn fhirpath_op(kind: &str, path: &str, value: Option<Value>) -> Value {
    let mut parts = vec![
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "path", "valueString": path}),
    ];
    if let Some(v) = value {
        parts.push(v);
    }
    json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": parts}]})
}

fn patch_fhirpath(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let path = format!("Patient/{id}");
    let replace = fhirpath_op(
        "replace",
        "Patient.birthDate",
        Some(json!({"name": "value", "valueDate": "1990-02-02"})),
    );
    s.send(Call::patch(&path).json(&replace))?.expect(200)?;
    let delete = fhirpath_op("delete", "Patient.birthDate", None);
    s.send(Call::patch(&path).body("application/json", serde_json::to_vec(&delete)?))?
        .expect(200)?;
    s.send(Call::get(&path))?.expect(200)?;
    Ok(s.finish())
}

fn patch_if_match(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let path = format!("Patient/{id}");
    let ops = || json_patch(json!([{"op": "replace", "path": "/gender", "value": "female"}]));
    s.send(
        Call::patch(&path)
            .header("If-Match", "W/\"1\"")
            .body(JSON_PATCH, ops()),
    )?
    .expect(200)?;
    s.send(
        Call::patch(&path)
            .header("If-Match", "W/\"1\"")
            .body(JSON_PATCH, ops()),
    )?
    .expect(412)?;
    Ok(s.finish())
}

fn patch_unsupported(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    // A JSON object that is neither JSON Patch nor a Parameters. The gateway refuses it itself (it must
    // compute a patch's result to validate it), with the upstream's status but its own OperationOutcome,
    // so only the status is compared; the read-back shows nothing changed.
    s.send_unrecorded(
        Call::patch(format!("Patient/{id}")).body(FHIR_JSON, br#"{"gender":"female"}"#.to_vec()),
    )?
    .expect(415)?;
    s.send(Call::get(format!("Patient/{id}")))?.expect(200)?;
    Ok(s.finish())
}

fn delete_then_read(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let id = create_patient(&mut s, n)?;
    let path = format!("Patient/{id}");
    s.send(Call::put(&path).json(&patient_with(n, &id, "female")))?
        .expect(200)?;
    s.send(Call::delete(&path))?.expect(200)?;
    s.send(Call::get(&path))?.expect(410)?;
    s.send(Call::get(format!("{path}/_history/1")))?
        .expect(200)?;
    s.send(Call::get(format!("{path}/_history/3")))?
        .expect(410)?;
    s.send(Call::delete(&path))?.expect(200)?;
    s.send(Call::get(format!("Patient?{}", ident_query(n))))?
        .expect(200)?;
    s.send(Call::put(&path).json(&patient_with(n, &id, "male")))?
        .expect(201)?;
    s.send(Call::get(&path))?.expect(200)?;
    Ok(s.finish())
}

fn conditional_delete(c: &Client, base: &str, n: &str) -> Result<Transcript> {
    let mut s = Session::new(c, base);
    let target = format!("Patient?{}", ident_query(n));
    create_patient(&mut s, n)?;
    s.send(Call::delete(&target))?.expect(200)?;
    s.send(Call::delete(&target))?.expect(204)?;
    create_patient(&mut s, n)?;
    create_patient(&mut s, n)?;
    s.send(Call::delete(&target))?.expect(412)?;
    Ok(s.finish())
}
