//! Writes are authorised like reads (issue 17): a `patient/` token writes only in its launch patient's
//! compartment, whether it creates, overwrites, deletes, or writes through a batch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anchorgate_e2e::{client, client_as, mint, put_resources, Gateway, Upstream};
use serde_json::{json, Value};

fn observation(id: Option<&str>, patient: &str) -> Value {
    let mut o = json!({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "valueString": "recorded"
    });
    if let Some(id) = id {
        o["id"] = id.into();
    }
    o
}

fn send(req: reqwest::blocking::RequestBuilder) -> (u16, String) {
    let r = req.send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[test]
fn a_patient_token_writes_only_its_own_patients_data() {
    let gw = Gateway::shared();
    let base = &gw.base;
    // Fixtures straight into the EHR.
    put_resources(
        &Upstream::shared().base,
        &[
            json!({"resourceType": "Patient", "id": "wa-p"}),
            json!({"resourceType": "Patient", "id": "wa-q"}),
            observation(Some("wa-obs-p"), "wa-p"),
            observation(Some("wa-obs-q"), "wa-q"),
        ],
    );
    let q = mint(json!({
        "sub": "Patient/wa-q", "client_id": "patient-app", "scope": "patient/*.cruds",
        "patient": "wa-q",
        "extensions": {"hl7-b2b": {"organization_id": "Organization/org-h1", "purpose_of_use": ["TREAT"]}}
    }));
    let fhir = "application/fhir+json";
    let c = client_as(&q);
    let refused = [
        (
            "create in another patient's compartment",
            c.post(format!("{base}/Observation"))
                .header("content-type", fhir)
                .body(observation(None, "wa-p").to_string()),
        ),
        (
            "overwrite another patient's resource with the caller's own subject",
            c.put(format!("{base}/Observation/wa-obs-p"))
                .header("content-type", fhir)
                .body(observation(Some("wa-obs-p"), "wa-q").to_string()),
        ),
        (
            "delete another patient's resource",
            c.delete(format!("{base}/Observation/wa-obs-p")),
        ),
        (
            "patch another patient's resource",
            c.patch(format!("{base}/Observation/wa-obs-p"))
                .header("content-type", "application/json-patch+json")
                .body(r#"[{"op":"replace","path":"/valueString","value":"changed"}]"#),
        ),
        (
            "a batch entry in another patient's compartment",
            c.post(base.to_string()).header("content-type", fhir).body(
                json!({"resourceType": "Bundle", "type": "batch", "entry": [{
                    "resource": observation(None, "wa-p"),
                    "request": {"method": "POST", "url": "Observation"}
                }]})
                .to_string(),
            ),
        ),
    ];
    for (what, req) in refused {
        let (status, text) = send(req);
        assert_eq!(status, 403, "{what}: {text}");
    }
    // Patient P's Observation is untouched.
    let (status, text) = send(client().get(format!("{base}/Observation/wa-obs-p")));
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("\"recorded\"") && text.contains("Patient/wa-p"),
        "{text}"
    );
    // Its own patient's data it may write.
    let (status, text) = send(
        c.post(format!("{base}/Observation"))
            .header("content-type", fhir)
            .body(observation(None, "wa-q").to_string()),
    );
    assert_eq!(status, 201, "{text}");
    let (status, text) = send(
        c.put(format!("{base}/Observation/wa-obs-q"))
            .header("content-type", fhir)
            .body(observation(Some("wa-obs-q"), "wa-q").to_string()),
    );
    assert_eq!(status, 200, "{text}");
}
