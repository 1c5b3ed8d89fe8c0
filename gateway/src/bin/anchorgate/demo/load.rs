//! The demo's data, written through the gateway so that every version is validated and anchored:
//! three Synthea patients with their Conditions, and one consent each.

use std::time::Duration;

use serde_json::{json, Value};

/// Three synthetic Synthea patients and their Conditions (`make_patients.py` made it).
const PATIENTS: &str = include_str!("patients.json");
/// The SNOMED CT code the third consent withholds: "Victim of intimate partner abuse (finding)".
pub(crate) const WITHHELD_CODE: &str = "706893006";
const SNOMED: &str = "http://snomed.info/sct";

/// One demo patient and what its consent says.
#[derive(Debug, Clone)]
pub(crate) struct DemoPatient {
    /// The Patient id.
    pub(crate) id: String,
    /// Given and family name, for the walk-through's text.
    pub(crate) name: String,
    /// Conditions loaded for the patient.
    pub(crate) conditions: usize,
    /// What the patient's consent says, in plain words.
    pub(crate) consent: &'static str,
}

/// What was loaded.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The patients, in the order of the three consents: permits treatment, refuses Hospital Two,
    /// withholds [`WITHHELD_CODE`].
    pub(crate) patients: Vec<DemoPatient>,
    /// Versions anchored on the ledger (resources and consents).
    pub(crate) anchored: usize,
}

/// Writes every demo resource, then the consents, through the gateway at `fhir` with `token`.
pub(crate) fn load(fhir: &str, token: &str) -> Result<Loaded, String> {
    let resources: Vec<Value> =
        serde_json::from_str(PATIENTS).map_err(|e| format!("patients.json: {e}"))?;
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let mut anchored = 0;
    let mut patients = Vec::new();
    for r in &resources {
        put(&http, fhir, token, r)?;
        anchored += 1;
        if r["resourceType"] == "Patient" {
            patients.push(DemoPatient {
                id: str_at(r, "/id").to_owned(),
                name: display_name(r),
                conditions: 0,
                consent: "",
            });
        } else if let Some(p) = patients.last_mut() {
            p.conditions += 1;
        }
    }
    if patients.len() != 3 {
        return Err(format!(
            "patients.json holds {} patients, not 3",
            patients.len()
        ));
    }
    let texts = [
        "permits treatment, by anyone",
        "permits treatment, but refuses Hospital Two",
        "permits treatment, but withholds one diagnosis (SNOMED 706893006, intimate partner abuse)",
    ];
    for (n, p) in patients.iter_mut().enumerate() {
        p.consent = texts[n];
        put(&http, fhir, token, &consent(n, &p.id))?;
        anchored += 1;
    }
    Ok(Loaded { patients, anchored })
}

/// PUTs `r` to its own id and checks that the gateway anchored it.
fn put(http: &reqwest::blocking::Client, fhir: &str, token: &str, r: &Value) -> Result<(), String> {
    let path = format!("{}/{}", str_at(r, "/resourceType"), str_at(r, "/id"));
    let resp = http
        .put(format!("{fhir}/{path}"))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(r.to_string())
        .send()
        .map_err(|e| format!("PUT {path}: {e}"))?;
    let status = resp.status();
    let anchored = resp.headers().contains_key("x-anchorgate-leaf-index");
    if !status.is_success() || !anchored {
        let body = resp.text().unwrap_or_default();
        return Err(format!("PUT {path} answered {status}: {body}"));
    }
    Ok(())
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn display_name(patient: &Value) -> String {
    let name = &patient["name"][0];
    let given = name["given"][0].as_str().unwrap_or("");
    let family = name["family"].as_str().unwrap_or("");
    // Synthea numbers its names (`Denis399`); the digits mean nothing to a reader.
    let plain = |s: &str| s.trim_end_matches(|c: char| c.is_ascii_digit()).to_owned();
    format!("{} {}", plain(given), plain(family))
}

/// The `n`th demo consent for `patient`: R4 Consent, scope patient-privacy, opt-in to treatment,
/// with a nested deny provision for the second (an organisation) and the third (a code).
fn consent(n: usize, patient: &str) -> Value {
    let treat =
        json!([{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]);
    let mut provision = json!({"type": "permit", "purpose": treat});
    match n {
        1 => {
            provision["provision"] = json!([{"type": "deny", "actor": [{
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                "reference": {"reference": "Organization/org-h2"}
            }]}]);
        }
        2 => {
            provision["provision"] = json!([{"type": "deny", "code": [{
                "coding": [{"system": SNOMED, "code": WITHHELD_CODE}]
            }]}]);
        }
        _ => {}
    }
    json!({
        "resourceType": "Consent",
        "id": format!("demo-consent-{}", n + 1),
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "dateTime": "2026-01-01",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": provision,
    })
}
