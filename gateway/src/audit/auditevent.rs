//! Decision records as FHIR `AuditEvent`s after IHE BALP: the REST event (PatientRead or PatientQuery) and the AuthZ-Consent decision.

use serde_json::{json, Value};

use super::record::DecisionRecord;

const BALP: &str = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";

/// The AuditEvents one decision is shown as: its AuthZ-Consent event always, and the REST event
/// when the request read or searched patient data.
pub fn events(rec: &DecisionRecord, gateway: &str) -> Vec<Value> {
    let mut out = vec![authz(rec, gateway)];
    if let Some(rest) = rest(rec, gateway) {
        out.push(rest);
    }
    out
}

/// BALP outcome code: 0 success, 4 minor failure (a filtered answer), 8 serious failure (denied).
fn outcome(rec: &DecisionRecord) -> &'static str {
    match rec.outcome.as_str() {
        "permit" => "0",
        "permit-with-filter" => "4",
        _ => "8",
    }
}

fn agents(rec: &DecisionRecord, gateway: &str) -> Vec<Value> {
    let p = &rec.principal;
    let purpose: Vec<Value> = rec
        .purpose
        .iter()
        .map(|c| json!({"coding": [{"system": ACT_REASON, "code": c}]}))
        .collect();
    let mut who =
        json!({"identifier": {"system": p.issuer.clone().unwrap_or_default(), "value": p.sub}});
    if let Some(u) = &p.fhir_user {
        who = json!({"reference": u});
    }
    let mut user = json!({
        "type": {"coding": [{"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}]},
        "who": who,
        "requestor": true,
    });
    if !purpose.is_empty() {
        user["purposeOfUse"] = Value::Array(purpose);
    }
    let mut out = vec![user];
    if let Some(c) = &p.client_id {
        out.push(json!({
            "type": {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]},
            "who": {"identifier": {"value": c}},
            "requestor": false,
        }));
    }
    if let Some(o) = &p.organization {
        out.push(json!({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "custodian"}]},
            "who": {"reference": o},
            "requestor": false,
        }));
    }
    out.push(json!({
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {"display": gateway},
        "requestor": false,
    }));
    out
}

fn base(rec: &DecisionRecord, id: String, profile: &str, gateway: &str) -> Value {
    json!({
        "resourceType": "AuditEvent",
        "id": id,
        "meta": {"profile": [format!("{BALP}{profile}")]},
        "recorded": rec.time,
        "outcome": outcome(rec),
        "agent": agents(rec, gateway),
        "source": {
            "observer": {"display": gateway},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "6", "display": "Security Server"}]
        },
    })
}

fn patient_entities(rec: &DecisionRecord) -> Vec<Value> {
    rec.patients
        .iter()
        .map(|p| {
            json!({
                "what": {"reference": p},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            })
        })
        .collect()
}

/// The AuthZ-Consent event: the decision, its reasons, and the consents it rested on.
fn authz(rec: &DecisionRecord, gateway: &str) -> Value {
    let mut ev = base(rec, format!("{}-authz", rec.id), "AuthZconsent", gateway);
    ev["type"] = json!({"system": DCM, "code": "110113", "display": "Security Alert"});
    ev["subtype"] = json!([{"system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType", "code": "AuthZ-Consent", "display": "Authorization Decision using Roles and Consent"}]);
    ev["action"] = json!("E");
    let mut why = format!("{} ({})", rec.outcome, rec.status);
    if rec.break_glass {
        why.push_str("; BREAK-GLASS override");
    }
    if !rec.tampered_consents.is_empty() {
        why.push_str("; consents ignored because they did not match the ledger");
    }
    ev["outcomeDesc"] = json!(why);
    let mut entities = patient_entities(rec);
    for r in &rec.reasons {
        if let Some(c) = r.get("consent").and_then(Value::as_str) {
            let what = match r.get("version").and_then(Value::as_str) {
                Some(v) => format!("Consent/{c}/_history/{v}"),
                None => format!("Consent/{c}"),
            };
            entities.push(json!({
                "what": {"reference": what},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
                "description": r.get("provision").and_then(Value::as_str).unwrap_or_default(),
            }));
        }
    }
    let mut detail = vec![json!({"type": "decision", "valueString": rec.id})];
    if let Some(leaf) = rec.leaf {
        detail.push(json!({"type": "ledgerLeafIndex", "valueString": leaf.to_string()}));
    }
    entities.push(json!({
        "what": {"identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", rec.id)}},
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "detail": detail,
    }));
    ev["entity"] = Value::Array(entities);
    ev
}

/// The REST event: PatientRead for reads, PatientQuery for searches; none for other interactions.
fn rest(rec: &DecisionRecord, gateway: &str) -> Option<Value> {
    let (profile, code, action) = match rec.interaction.as_str() {
        "read" | "vread" => ("PatientRead", rec.interaction.as_str(), "R"),
        "search-type" | "search-system" | "search-compartment" | "operation" => {
            ("PatientQuery", "search-type", "E")
        }
        _ => return None,
    };
    if rec.patients.is_empty() {
        return None;
    }
    let mut ev = base(rec, format!("{}-rest", rec.id), profile, gateway);
    ev["type"] = json!({"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "Restful Operation"});
    ev["subtype"] = json!([{"system": "http://hl7.org/fhir/restful-interaction", "code": code}]);
    ev["action"] = json!(action);
    ev["entity"] = Value::Array(patient_entities(rec));
    Some(ev)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::audit::PrincipalSummary;

    #[test]
    fn read_decision_maps_to_two_balp_events() {
        let rec = DecisionRecord {
            id: "d1".into(),
            time: "2025-06-15T12:00:00Z".into(),
            principal: PrincipalSummary {
                sub: "Practitioner/prac-a".into(),
                fhir_user: Some("Practitioner/prac-a".into()),
                client_id: Some("ehr-h1".into()),
                organization: Some("Organization/org-h1".into()),
                ..Default::default()
            },
            purpose: Some("TREAT".into()),
            patients: vec!["Patient/pat-p".into()],
            interaction: "read".into(),
            outcome: "deny".into(),
            status: 404,
            // A reason exactly as the engine writes it into the record.
            reasons: vec![
                serde_json::to_value(crate::policy::decision::Reason::Consent {
                    consent: "c1".into(),
                    version: Some("2".into()),
                    provision: "Consent.provision.provision[0]".into(),
                    effect: crate::policy::consent::Effect::Deny,
                })
                .unwrap(),
            ],
            leaf: Some(42),
            ..Default::default()
        };
        let evs = events(&rec, "anchorgate");
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0]["outcome"], "8");
        assert_eq!(evs[0]["subtype"][0]["code"], "AuthZ-Consent");
        assert_eq!(
            evs[0]["entity"][1]["what"]["reference"],
            "Consent/c1/_history/2"
        );
        assert_eq!(
            evs[0]["entity"][1]["description"],
            "Consent.provision.provision[0]"
        );
        assert_eq!(
            evs[0]["agent"][0]["purposeOfUse"][0]["coding"][0]["code"],
            "TREAT"
        );
        assert_eq!(evs[1]["meta"]["profile"][0], format!("{BALP}PatientRead"));
        assert_eq!(evs[1]["entity"][0]["what"]["reference"], "Patient/pat-p");
    }
}
