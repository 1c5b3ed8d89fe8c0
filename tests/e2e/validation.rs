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

fn send(req: reqwest::blocking::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, body)
}

fn severities(oo: &Value) -> Vec<String> {
    oo["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["severity"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn validate_operation_is_answered_by_the_gateway() {
    let gw = Gateway::shared();
    let post_json = |path: &str, body: Value| {
        send(
            client()
                .post(format!("{}/{path}", gw.base))
                .header("content-type", "application/fhir+json")
                .body(body.to_string()),
        )
    };
    // Valid: 200 and an informational issue.
    let good = json!({"resourceType": "Patient", "gender": "female"});
    let (status, _, oo) = post_json("Patient/$validate", good.clone());
    assert_eq!(status, 200, "{oo}");
    assert_eq!(severities(&oo), ["information"], "{oo}");
    // Invalid: still 200 (R4 $validate), with every error located.
    let bad = json!({"resourceType": "Patient", "gender": "robot", "birthDate": "1970-13-45"});
    let (status, _, oo) = post_json("Patient/$validate", bad.clone());
    assert_eq!(status, 200, "{oo}");
    let exprs = expressions(&oo);
    assert!(exprs.contains(&"Patient.gender".to_owned()), "{oo}");
    assert!(exprs.contains(&"Patient.birthDate".to_owned()), "{oo}");
    // The same verdict as a write would get: it is the gateway's validator, not the upstream's.
    let (status, oo_write) = post(
        &gw.base,
        "Patient",
        "application/fhir+json",
        bad.to_string(),
    );
    assert_eq!(status, 422);
    assert_eq!(oo_write["issue"], oo["issue"]);
    // Parameters form, instance level, mode=update with a matching id.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Patient", "id": "v1", "gender": "male"}},
        {"name": "mode", "valueCode": "update"}]});
    let (status, _, oo) = post_json("Patient/v1/$validate", params.clone());
    assert_eq!(status, 200, "{oo}");
    let (status, _, oo) = post_json("Patient/v2/$validate", params);
    assert_eq!(status, 400, "{oo}");
    assert_eq!(expressions(&oo), ["Patient.id"]);
    // XML in, XML out.
    let (status, _, text) = send(
        client()
            .post(format!("{}/Patient/$validate", gw.base))
            .header("content-type", "application/fhir+xml")
            .header("accept", "application/fhir+xml")
            .body(r#"<Patient xmlns="http://hl7.org/fhir"><gender value="robot"/></Patient>"#),
    );
    assert_eq!(status, 200);
    let text = text.as_str().unwrap();
    assert!(
        text.contains("<OperationOutcome") && text.contains("Patient.gender"),
        "{text}"
    );
    // Wrong type, no body, wrong method, unknown mode: 4xx with an OperationOutcome.
    let (status, _, _) = post_json("Observation/$validate", good.clone());
    assert_eq!(status, 400);
    let (status, _, oo) = send(client().post(format!("{}/Patient/$validate", gw.base)));
    assert_eq!(status, 400, "{oo}");
    let (status, h, _) = send(client().get(format!("{}/Patient/$validate", gw.base)));
    assert_eq!(status, 405);
    assert_eq!(h["allow"], "POST");
    let (status, _, _) = post_json("Patient/$validate?mode=sideways", good);
    assert_eq!(status, 400);
}

#[test]
fn warn_mode_forwards_and_reports() {
    let up = Upstream::shared();
    let gw = Gateway::start_with(
        &up.base,
        GatewayOptions {
            config_toml: Some("[validation.per_type]\nPatient = \"warn\"\n".into()),
            ..Default::default()
        },
    );
    let family = format!("Warn{}", std::process::id());
    let bad = json!({"resourceType": "Patient", "name": [{"family": family}], "gender": "robot"});
    let (status, h, body) = send(
        client()
            .post(format!("{}/Patient", gw.base))
            .header("content-type", "application/fhir+json")
            .body(bad.to_string()),
    );
    // sekmet has its own (R4B) checks; what matters is that the gateway forwarded it.
    assert_ne!(status, 422, "{body}");
    let header: Value = serde_json::from_str(h["x-validation-outcome"].to_str().unwrap()).unwrap();
    assert!(
        expressions(&header).contains(&"Patient.gender".to_owned()),
        "{header}"
    );

    // In a transaction, a warn-mode entry's issues go to its entry.response.outcome; an
    // enforce-mode entry (Observation) would still refuse the whole transaction.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": family}],
                      "birthDate": "1970-01-01", "extension": [{"url": "http://example.org/x"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
         "request": {"method": "POST", "url": "Observation"}}
    ]});
    let (status, h, body) = send(
        client()
            .post(&gw.base)
            .header("content-type", "application/fhir+json")
            .body(bundle.to_string()),
    );
    assert_eq!(status, 200, "{body}");
    assert!(h.get("x-validation-outcome").is_none());
    let outcome = &body["entry"][0]["response"]["outcome"];
    assert_eq!(outcome["resourceType"], "OperationOutcome", "{body}");
    assert!(
        expressions(outcome)[0].starts_with("Bundle.entry[0].resource"),
        "{outcome}"
    );
    assert!(body["entry"][1]["response"].get("outcome").is_none());
    let mut bad_obs = bundle.clone();
    bad_obs["entry"][1]["resource"]["status"] = json!("sideways");
    let (status, _, _) = send(
        client()
            .post(&gw.base)
            .header("content-type", "application/fhir+json")
            .body(bad_obs.to_string()),
    );
    assert_eq!(status, 422);
}

#[test]
fn patches_are_judged_by_their_result() {
    let gw = Gateway::shared();
    let up = Upstream::shared();
    let family = format!("Patch{}", std::process::id());
    let (status, created) = post(
        &gw.base,
        "Patient",
        "application/fhir+json",
        json!({"resourceType": "Patient", "name": [{"family": family}], "gender": "female"})
            .to_string(),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let patch = |content_type: &str, body: Value, if_match: Option<&str>| {
        let mut req = client()
            .patch(format!("{}/Patient/{id}", gw.base))
            .header("content-type", content_type)
            .body(body.to_string());
        if let Some(v) = if_match {
            req = req.header("if-match", v);
        }
        send(req)
    };
    let current = || -> Value {
        client()
            .get(format!("{}/Patient/{id}", up.base))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    // A JSON Patch whose result is invalid: 422 located in the result, the upstream untouched.
    let (status, _, oo) = patch(
        "application/json-patch+json",
        json!([{"op": "replace", "path": "/gender", "value": "robot"}]),
        None,
    );
    assert_eq!(status, 422, "{oo}");
    assert_eq!(expressions(&oo), ["Patient.gender"]);
    assert_eq!(current()["gender"], "female");
    assert_eq!(current()["meta"]["versionId"], "1");
    // A FHIRPath Patch whose result is invalid.
    let fp = |kind: &str, path: &str, value: Value| {
        json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
            {"name": "type", "valueCode": kind}, {"name": "path", "valueString": path},
            {"name": "value", "valueDate": value}]}]})
    };
    let (status, _, oo) = patch(
        "application/fhir+json",
        fp("replace", "Patient.gender", json!("robot")),
        None,
    );
    assert_eq!(status, 422, "{oo}");
    // A path the gateway cannot evaluate is refused rather than forwarded unchecked.
    let (status, _, oo) = patch(
        "application/fhir+json",
        fp("replace", "Patient.name.select(family)", json!("x")),
        None,
    );
    assert_eq!(status, 422, "{oo}");
    assert_eq!(oo["issue"][0]["code"], "not-supported", "{oo}");
    // A valid patch goes through, pinned to the version that was validated.
    let (status, h, body) = patch(
        "application/json-patch+json",
        json!([{"op": "replace", "path": "/gender", "value": "male"}]),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(h["etag"], "W/\"2\"");
    assert_eq!(current()["gender"], "male");
    // A client's own stale If-Match is kept, and the upstream refuses the patch.
    let (status, _, _) = patch(
        "application/json-patch+json",
        json!([{"op": "replace", "path": "/gender", "value": "other"}]),
        Some("W/\"1\""),
    );
    assert_eq!(status, 412);
    // Patching something that does not exist: the upstream answers.
    let (status, _, _) = send(
        client()
            .patch(format!("{}/Patient/no-such-patient-{id}", gw.base))
            .header("content-type", "application/json-patch+json")
            .body(json!([{"op": "replace", "path": "/gender", "value": "male"}]).to_string()),
    );
    assert_eq!(status, 404);
}

const IPS_PATIENT: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Patient-uv-ips";

#[test]
fn profiles_apply_to_validate_and_to_configured_writes() {
    let gw = Gateway::start_with(
        &Upstream::shared().base,
        GatewayOptions {
            config_toml: Some(format!(
                "[validation.profiles]\nPatient = [\"{IPS_PATIENT}\"]\n"
            )),
            ..Default::default()
        },
    );
    let nameless = json!({"resourceType": "Patient", "gender": "female"});
    let validate = |query: &str, body: &Value| {
        send(
            client()
                .post(format!("{}/Patient/$validate{query}", gw.base))
                .header("content-type", "application/fhir+json")
                .body(body.to_string()),
        )
    };
    // Base R4 is content with it; IPS requires a name and a birthDate.
    let (status, _, oo) = validate("", &nameless);
    assert_eq!(
        (status, severities(&oo)),
        (200, vec!["information".to_owned()]),
        "{oo}"
    );
    let (status, _, oo) = validate(&format!("?profile={IPS_PATIENT}"), &nameless);
    assert_eq!(status, 200);
    assert!(severities(&oo).contains(&"error".to_owned()), "{oo}");
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": nameless},
        {"name": "profile", "valueCanonical": IPS_PATIENT}]});
    let (_, _, oo2) = validate("", &params);
    assert_eq!(oo2, oo);
    // Unknown profiles, and profiles of another type, cannot be checked: 400, never "valid".
    let (status, _, _) = validate(
        "?profile=http://example.org/StructureDefinition/nope",
        &nameless,
    );
    assert_eq!(status, 400);
    let obs_profile = "http://hl7.org/fhir/uv/ips/StructureDefinition/Observation-results-uv-ips";
    let (status, _, _) = validate(&format!("?profile={obs_profile}"), &nameless);
    assert_eq!(status, 400);
    // The configured profile holds on the write path.
    let (status, oo) = post(
        &gw.base,
        "Patient",
        "application/fhir+json",
        nameless.to_string(),
    );
    assert_eq!(status, 422, "{oo}");
    let named = json!({"resourceType": "Patient", "name": [{"family": "Ips", "given": ["A"]}],
                       "birthDate": "1980-01-01"});
    let (status, oo) = post(
        &gw.base,
        "Patient",
        "application/fhir+json",
        named.to_string(),
    );
    assert_eq!(status, 201, "{oo}");
}

#[test]
fn hostile_values_are_refused_cleanly_in_bounded_time() {
    let gw = Gateway::shared();
    let validate = |body: String| {
        let started = std::time::Instant::now();
        let (status, _, oo) = send(
            client()
                .post(format!("{}/Patient/$validate", gw.base))
                .header("content-type", "application/fhir+json")
                .body(body),
        );
        (status, oo, started.elapsed())
    };
    let cases: Vec<(&str, String, &str)> = vec![
        // FHIR strings stop at 1 MiB.
        (
            "a 2 MiB string",
            json!({"resourceType": "Patient", "name": [{"family": "x".repeat(2 << 20)}]}).to_string(),
            "Patient.name[0].family",
        ),
        // 200,000 array items: linear work, a located answer.
        (
            "a 200k-item array",
            json!({"resourceType": "Patient", "name": [{"given": vec!["A"; 200_000], "family": ""}]})
                .to_string(),
            "Patient.name[0].family",
        ),
        (
            "an integer beyond 32 bits",
            r#"{"resourceType":"Patient","multipleBirthInteger":2147483648}"#.to_owned(),
            "Patient.multipleBirth",
        ),
        (
            "an integer with an exponent",
            r#"{"resourceType":"Patient","multipleBirthInteger":1e999}"#.to_owned(),
            "Patient.multipleBirth",
        ),
        (
            "a 100k-digit decimal where an integer belongs",
            format!(
                r#"{{"resourceType":"Patient","multipleBirthInteger":{}}}"#,
                "9".repeat(100_000)
            ),
            "Patient.multipleBirth",
        ),
    ];
    for (what, body, at) in cases {
        let (status, oo, took) = validate(body);
        assert_eq!(status, 200, "{what}: {oo}");
        assert!(
            expressions(&oo).iter().any(|e| e.starts_with(at)),
            "{what}: no issue at {at}: {oo}"
        );
        assert!(
            took < std::time::Duration::from_secs(10),
            "{what} took {took:?}"
        );
        assert!(
            oo.to_string().len() < 100_000,
            "{what}: the value is echoed back"
        );
    }
}

#[test]
fn local_profiles_load_from_configured_definitions() {
    let dir = anchorgate_e2e::work_dir("local-profiles");
    let url = "http://example.org/fhir/StructureDefinition/patient-with-birthdate";
    let sd = json!({"resourceType": "StructureDefinition", "url": url, "name": "PatientWithBirthDate",
        "status": "active", "fhirVersion": "4.0.1", "kind": "resource", "abstract": false,
        "type": "Patient", "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "differential": {"element": [{"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1}]}});
    std::fs::write(dir.join("patient-with-birthdate.json"), sd.to_string()).unwrap();
    let gw = Gateway::start_with(
        &Upstream::shared().base,
        GatewayOptions {
            config_toml: Some(format!(
                "[validation]\ndefinitions = [{:?}]\n[validation.profiles]\nPatient = [\"{url}\"]\n",
                dir.display().to_string()
            )),
            ..Default::default()
        },
    );
    let (status, oo) = post(
        &gw.base,
        "Patient",
        "application/fhir+json",
        json!({"resourceType": "Patient", "gender": "male"}).to_string(),
    );
    assert_eq!(status, 422, "{oo}");
    assert!(
        expressions(&oo).iter().any(|e| e.starts_with("Patient")),
        "{oo}"
    );
    let (status, _, oo) = send(
        client()
            .post(format!("{}/Patient/$validate?profile={url}", gw.base))
            .header("content-type", "application/fhir+json")
            .body(json!({"resourceType": "Patient", "birthDate": "1970-01-01"}).to_string()),
    );
    assert_eq!(
        (status, severities(&oo)),
        (200, vec!["information".to_owned()]),
        "{oo}"
    );

    // A missing definitions path stops the gateway before it binds, naming the setting.
    let out = std::process::Command::new(anchorgate_e2e::gateway_bin())
        .args(["check-config"])
        .env("ANCHORGATE_CONFIG", dir.join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "no config file: usage error");
    std::fs::write(
        dir.join("bad.toml"),
        "[validation]\ndefinitions = [\"/no/such/dir\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(anchorgate_e2e::gateway_bin())
        .args(["check-config"])
        .env("ANCHORGATE_CONFIG", dir.join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("validation") && err.contains("/no/such/dir"),
        "{err}"
    );
}
