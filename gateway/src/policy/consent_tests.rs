#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use super::*;

pub(crate) fn consent(provision: Value) -> Value {
    json!({
        "resourceType": "Consent", "id": "c1", "status": "active",
        "meta": {"versionId": "3"},
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p"},
        "dateTime": "2024-01-01",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": provision
    })
}

fn error_of(c: Value) -> ConsentError {
    ConsentModel::compile(&c).unwrap_err()
}

#[test]
fn compiles_tree_with_paths_and_conditions() {
    let m = ConsentModel::compile(&consent(json!({
        "type": "permit",
        "period": {"start": "2024-01-01"},
        "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
        "provision": [
            {"type": "deny", "actor": [{"reference": {"reference": "https://h/fhir/Organization/o2"}}],
             "provision": [{"type": "permit", "action": [{"coding": [{"code": "access"}]}]}]},
            {"type": "deny", "securityLabel": [{"system": "s", "code": "R"}],
             "class": [{"system": RESOURCE_TYPES, "code": "Observation"}, {"code": "http://p/sd|2"}, {"system": "x", "code": "doc"}],
             "code": [{"coding": [{"system": "http://loinc.org", "code": "1"}, {"code": "2"}]}],
             "dataPeriod": {"end": "2020"},
             "data": [{"meaning": "related", "reference": {"reference": "Encounter/e"}}]}
        ]
    })))
    .unwrap();
    assert_eq!(&*m.id, "c1");
    assert_eq!(m.version.as_deref(), Some("3"));
    assert_eq!(m.patient, "Patient/p");
    assert!(m.is_active());
    assert_eq!(m.base_effect, Effect::Permit);
    assert_eq!(m.policy_rule, vec!["OPTIN".to_owned()]);
    let paths: Vec<&str> = m.provisions.iter().map(|p| &*p.path).collect();
    assert_eq!(
        paths,
        [
            "Consent.provision",
            "Consent.provision.provision[0]",
            "Consent.provision.provision[0].provision[0]",
            "Consent.provision.provision[1]"
        ]
    );
    assert_eq!(m.root().children, vec![1, 3]);
    assert_eq!(m.provisions[1].children, vec![2]);
    assert_eq!(m.provisions[1].actors, vec![Box::from("Organization/o2")]);
    assert!(!m.provisions[1].on_resource());
    let p = &m.provisions[3];
    assert!(p.on_resource());
    assert_eq!(
        p.classes,
        vec![
            ClassRule::ResourceType("Observation".into()),
            ClassRule::Profile("http://p/sd".into()),
            ClassRule::Other
        ]
    );
    assert_eq!(p.codes.len(), 2);
    assert!(p.codes[1].matches(Some("any"), "2"));
    assert!(!p.codes[0].matches(Some("other"), "1"));
    assert_eq!(p.data[0].meaning, DataMeaning::Related);
    assert_eq!(&*p.data[0].reference, "Encounter/e");
    assert!(p.data_period.unwrap().start == i64::MIN);
}

#[test]
fn base_effect_from_type_then_policy_rule() {
    let mut c = consent(json!({"type": "deny"}));
    assert_eq!(ConsentModel::compile(&c).unwrap().base_effect, Effect::Deny);
    c["provision"] = json!({});
    assert_eq!(
        ConsentModel::compile(&c).unwrap().base_effect,
        Effect::Permit
    );
    for (rule, effect) in [
        ("OPTIN", Effect::Permit),
        ("OPTINR", Effect::Permit),
        ("OPTOUT", Effect::Deny),
        ("OPTOUTE", Effect::Deny),
    ] {
        c["policyRule"]["coding"][0]["code"] = json!(rule);
        assert_eq!(
            ConsentModel::compile(&c).unwrap().base_effect,
            effect,
            "{rule}"
        );
    }
    // No provision at all: the base effect applies to everything.
    c.as_object_mut().unwrap().remove("provision");
    let m = ConsentModel::compile(&c).unwrap();
    assert_eq!(m.provisions.len(), 1);
    c["policyRule"] = json!({"coding": [{"system": "http://other", "code": "OPTIN"}]});
    let e = error_of(c);
    assert_eq!(e.expression, "Consent.policyRule");
}

#[test]
fn status_is_kept_not_refused() {
    for (s, st) in [
        ("inactive", ConsentStatus::Inactive),
        ("entered-in-error", ConsentStatus::EnteredInError),
        ("draft", ConsentStatus::Draft),
        ("proposed", ConsentStatus::Proposed),
        ("rejected", ConsentStatus::Rejected),
    ] {
        let mut c = consent(json!({"type": "permit"}));
        c["status"] = json!(s);
        let m = ConsentModel::compile(&c).unwrap();
        assert_eq!(m.status, st);
        assert!(!m.is_active());
    }
    let mut c = consent(json!({"type": "permit"}));
    c["status"] = json!("revoked");
    assert_eq!(error_of(c).expression, "Consent.status");
}

#[test]
fn refusals_name_the_element() {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|c| c["resourceType"] = json!("Patient")),
            "Consent",
        ),
        (
            Box::new(|c| c["scope"]["coding"][0]["code"] = json!("treatment")),
            "Consent.scope",
        ),
        (
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("scope");
            }),
            "Consent.scope",
        ),
        (
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("patient");
            }),
            "Consent.patient",
        ),
        (
            Box::new(|c| c["patient"] = json!({"reference": "Group/g"})),
            "Consent.patient",
        ),
        (
            Box::new(|c| c["patient"] = json!({"reference": "#p"})),
            "Consent.patient",
        ),
        (
            Box::new(|c| c["provision"]["provision"] = json!([{"purpose": []}])),
            "Consent.provision.provision[0].type",
        ),
        (
            Box::new(|c| c["provision"]["type"] = json!("maybe")),
            "Consent.provision.type",
        ),
        (
            Box::new(|c| {
                c["provision"]["provision"] =
                    json!([{"type": "deny", "period": {"start": "2024-13-01"}}])
            }),
            "Consent.provision.provision[0].period",
        ),
        (
            Box::new(|c| {
                c["provision"]["provision"] = json!([{"type": "deny", "provision": [
                    {"type": "deny", "actor": [{"reference": {"identifier": {"value": "x"}}}]}]}])
            }),
            "Consent.provision.provision[0].provision[0].actor[0].reference",
        ),
        (
            Box::new(|c| {
                c["provision"]["data"] =
                    json!([{"meaning": "instance", "reference": {"reference": "urn:uuid:1"}}])
            }),
            "Consent.provision.data[0].reference",
        ),
        (
            Box::new(|c| {
                c["provision"]["data"] =
                    json!([{"meaning": "everything", "reference": {"reference": "Patient/p"}}])
            }),
            "Consent.provision.data[0].meaning",
        ),
        (
            Box::new(|c| c["provision"]["code"] = json!([{"text": "alcohol"}])),
            "Consent.provision.code[0]",
        ),
        (
            Box::new(|c| c["provision"]["securityLabel"] = json!([{"system": "x"}])),
            "Consent.provision.securityLabel[0]",
        ),
        (
            Box::new(|c| c["provision"]["provision"] = json!({"type": "deny"})),
            "Consent.provision.provision",
        ),
    ];
    for (mutate, expression) in cases {
        let mut c = consent(json!({"type": "permit"}));
        mutate(&mut c);
        let e = error_of(c);
        assert_eq!(e.expression, expression, "{e}");
        assert!(!e.message.is_empty());
    }
}

#[test]
fn depth_is_bounded() {
    let mut p = json!({"type": "deny"});
    for _ in 0..20 {
        p = json!({"type": "permit", "provision": [p]});
    }
    let e = error_of(consent(p));
    assert!(e.message.contains("levels"), "{e}");
}

#[test]
fn refusal_becomes_a_422_outcome() {
    let mut c = consent(json!({"type": "permit"}));
    c["scope"]["coding"][0]["code"] = json!("research");
    let e: crate::error::GatewayError = error_of(c).into();
    assert_eq!(e.classify().0, http::StatusCode::UNPROCESSABLE_ENTITY);
    let oo = e.outcome().to_json();
    assert_eq!(oo["issue"][0]["code"], "processing");
    assert_eq!(oo["issue"][0]["expression"][0], "Consent.scope");
}
