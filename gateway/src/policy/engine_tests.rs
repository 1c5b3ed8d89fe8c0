#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use super::*;
use crate::policy::consent::{ConsentModel, ConsentStatus};

const NOW: i64 = 1_749_988_800; // 2025-06-15T12:00:00Z
const AR: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

fn consent(id: &str, provision: Value) -> Arc<ConsentModel> {
    let c = json!({
        "resourceType": "Consent", "id": id, "status": "active", "meta": {"versionId": "2"},
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p"},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": provision
    });
    Arc::new(ConsentModel::compile(&c).unwrap())
}

fn treat() -> Value {
    json!([{"system": AR, "code": "TREAT"}])
}

fn facts() -> RequestFacts {
    RequestFacts {
        principal: "Practitioner/a".into(),
        fhir_user: Some("Practitioner/a".into()),
        organization: Some("Organization/h1".into()),
        groups: vec!["Group/team".into()],
        purpose: Some("TREAT".into()),
        action: ActionKind::Read,
        now: NOW,
        country: Some("GB".into()),
    }
}

fn engine(default: DefaultPolicy) -> PolicyEngine {
    PolicyEngine::new(OrgPolicies::shipped().unwrap(), default)
}

fn obs(id: &str, label: &str, code: &str, date: &str) -> Value {
    json!({"resourceType": "Observation", "id": id,
        "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": label}]},
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/p"}, "performer": [{"reference": "Practitioner/x"}],
        "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": date})
}

/// Admits `res` under `consents` for `f`, with the default policy deny.
fn admit_with(f: &RequestFacts, consents: &[Arc<ConsentModel>], res: &Value) -> Admission {
    engine(DefaultPolicy::Deny)
        .evaluate(f, consents)
        .admit(&ResourceFacts::new(res).unwrap())
}

fn admit(consents: &[Arc<ConsentModel>], res: &Value) -> bool {
    admit_with(&facts(), consents, res).permit
}

fn permit_if(provision_extra: Value) -> Vec<Arc<ConsentModel>> {
    let mut p = json!({"type": "permit"});
    for (k, v) in provision_extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    vec![consent("c", p)]
}

fn o1() -> Value {
    obs("o1", "N", "1", "2022-05-01")
}

#[test]
fn actor_matches_user_organisation_or_group_and_ignores_role() {
    let role = json!({"coding": [{"code": "IRCP"}]});
    for who in [
        "Practitioner/a",
        "Organization/h1",
        "Group/team",
        "https://h/fhir/Group/team",
    ] {
        let c = permit_if(json!({"actor": [{"role": role, "reference": {"reference": who}}]}));
        assert!(admit(&c, &o1()), "{who}");
    }
    let c = permit_if(
        json!({"actor": [{"role": role, "reference": {"reference": "Organization/h2"}}]}),
    );
    assert!(!admit(&c, &o1()));
    // Values of one element are ORed.
    let c = permit_if(json!({"actor": [
        {"role": role, "reference": {"reference": "Organization/h2"}},
        {"role": role, "reference": {"reference": "Organization/h1"}}]}));
    assert!(admit(&c, &o1()));
}

#[test]
fn action_kinds() {
    let cs = "http://terminology.hl7.org/CodeSystem/consentaction";
    for (code, system, read, write) in [
        ("access", Some(cs), true, false),
        ("use", None, true, false),
        ("disclose", Some(cs), true, false),
        ("correct", Some(cs), false, true),
        ("collect", Some(cs), false, false),
        ("access", Some("http://other"), false, false),
    ] {
        let coding = match system {
            Some(s) => json!({"system": s, "code": code}),
            None => json!({"code": code}),
        };
        let c = permit_if(json!({"action": [{"coding": [coding]}]}));
        assert_eq!(admit(&c, &o1()), read, "{code} read");
        let mut w = facts();
        w.action = ActionKind::Write;
        // Writes: the consent layer only; the shipped org policies permit what the consent permits.
        assert_eq!(admit_with(&w, &c, &o1()).permit, write, "{code} write");
    }
}

#[test]
fn purpose_systems_and_absence() {
    for (system, ok) in [
        (Some(AR), true),
        (Some("urn:oid:2.16.840.1.113883.5.8"), true),
        (None, true),
        (Some("http://other"), false),
    ] {
        let coding = match system {
            Some(s) => json!({"system": s, "code": "TREAT"}),
            None => json!({"code": "TREAT"}),
        };
        let c = permit_if(json!({"purpose": [coding]}));
        assert_eq!(admit(&c, &o1()), ok, "{system:?}");
    }
    // A consent for a purpose does not apply to a request without one (and purpose-required denies).
    let mut none = facts();
    none.purpose = None;
    let c = permit_if(json!({}));
    let a = admit_with(&none, &c, &o1());
    assert!(!a.permit);
    assert!(a
        .reasons
        .iter()
        .any(|r| matches!(r, Reason::Policy { policy, .. } if &**policy == "purpose-required")));
}

#[test]
fn period_is_judged_against_now() {
    let past = permit_if(json!({"period": {"start": "2020-01-01", "end": "2024-12-31"}}));
    assert!(!admit(&past, &o1()));
    let current = permit_if(json!({"period": {"start": "2025-06-15", "end": "2025-06-15"}}));
    assert!(admit(&current, &o1()));
    let future = permit_if(json!({"period": {"start": "2025-06-16"}}));
    assert!(!admit(&future, &o1()));
}

#[test]
fn resource_elements() {
    let label = |c: &str| {
        permit_if(
            json!({"securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": c}]}),
        )
    };
    assert!(admit(&label("N"), &o1()));
    assert!(!admit(&label("R"), &o1()));
    let class = |v: Value| permit_if(json!({"class": [v]}));
    assert!(admit(
        &class(json!({"system": "http://hl7.org/fhir/resource-types", "code": "Observation"})),
        &o1()
    ));
    assert!(admit(&class(json!({"code": "Observation"})), &o1()));
    assert!(!admit(&class(json!({"code": "Condition"})), &o1()));
    let mut profiled = o1();
    profiled["meta"]["profile"] = json!(["http://p/StructureDefinition/vitals|1.0"]);
    let by_profile = class(json!({"code": "http://p/StructureDefinition/vitals"}));
    assert!(admit(&by_profile, &profiled));
    assert!(!admit(&by_profile, &o1()));
    let code = |c: &str| {
        permit_if(json!({"code": [{"coding": [{"system": "http://loinc.org", "code": c}]}]}))
    };
    assert!(admit(&code("1"), &o1()));
    assert!(!admit(&code("2"), &o1()));
    let data = |meaning: &str, r: &str| {
        permit_if(json!({"data": [{"meaning": meaning, "reference": {"reference": r}}]}))
    };
    assert!(admit(&data("instance", "Observation/o1"), &o1()));
    assert!(!admit(&data("instance", "Observation/o2"), &o1()));
    assert!(admit(&data("related", "Encounter/e1"), &o1()));
    assert!(admit(&data("dependents", "Observation/o1"), &o1()));
    assert!(!admit(&data("related", "Encounter/e2"), &o1()));
    assert!(admit(&data("authoredby", "Practitioner/x"), &o1()));
    assert!(
        !admit(&data("authoredby", "Patient/p"), &o1()),
        "subject is not an author"
    );
}

#[test]
fn elements_are_anded_values_ored() {
    let c = permit_if(json!({
        "purpose": [{"system": AR, "code": "HRESCH"}, {"system": AR, "code": "TREAT"}],
        "code": [{"coding": [{"system": "http://loinc.org", "code": "9"}]}, {"coding": [{"system": "http://loinc.org", "code": "1"}]}],
        "securityLabel": [{"code": "N"}]
    }));
    assert!(admit(&c, &o1()));
    assert!(
        !admit(&c, &obs("o2", "R", "1", "2022-05-01")),
        "one element failing fails the provision"
    );
}

#[test]
fn data_period_unknown_resolves_toward_denial() {
    let dp = json!({"start": "2022-01-01", "end": "2022-12-31"});
    let permit = permit_if(json!({"dataPeriod": dp}));
    assert!(admit(&permit, &o1()));
    assert!(!admit(&permit, &obs("o", "N", "1", "2023-02-01")));
    // Partly inside (a year straddling the boundary) or undated: a permit does not match...
    let straddle = obs("o", "N", "1", "2022");
    assert!(admit(&permit, &straddle), "2022 is inside 2022");
    let mut undated = o1();
    undated.as_object_mut().unwrap().remove("effectiveDateTime");
    assert!(!admit(&permit, &undated));
    let mut long = o1();
    long.as_object_mut().unwrap().remove("effectiveDateTime");
    long["effectivePeriod"] = json!({"start": "2022-11-01", "end": "2023-02-01"});
    assert!(!admit(&permit, &long));
    // ... and a deny does.
    let deny = vec![consent(
        "c",
        json!({"type": "permit", "provision": [{"type": "deny", "dataPeriod": dp}]}),
    )];
    assert!(!admit(&deny, &undated));
    assert!(!admit(&deny, &long));
    assert!(admit(&deny, &obs("o", "N", "1", "2021-01-01")));
}

#[test]
fn deepest_wins_and_deny_wins_among_siblings() {
    // permit TREAT > deny label R > permit code 1: an R-labelled code-1 resource is permitted again.
    let c = vec![consent(
        "c",
        json!({"type": "permit", "purpose": treat(), "provision": [
            {"type": "deny", "securityLabel": [{"code": "R"}], "provision": [
                {"type": "permit", "code": [{"coding": [{"system": "http://loinc.org", "code": "1"}]}]}]},
            {"type": "permit", "code": [{"coding": [{"system": "http://loinc.org", "code": "7"}]}]}
        ]}),
    )];
    let a = admit_with(&facts(), &c, &obs("o", "R", "1", "2022-01-01"));
    assert!(a.permit);
    assert!(a.reasons.contains(&Reason::Consent {
        consent: "c".into(),
        version: Some("2".into()),
        provision: "Consent.provision.provision[0].provision[0]".into(),
        effect: Effect::Permit
    }));
    assert!(!admit(&c, &obs("o", "R", "2", "2022-01-01")));
    // R-labelled code 7: the deny sibling and the permit sibling both match; deny wins.
    let a = admit_with(&facts(), &c, &obs("o", "R", "7", "2022-01-01"));
    assert!(!a.permit);
    assert_eq!(
        a.reasons[0],
        Reason::Consent {
            consent: "c".into(),
            version: Some("2".into()),
            provision: "Consent.provision.provision[0]".into(),
            effect: Effect::Deny
        }
    );
}

#[test]
fn deny_wins_across_consents_and_default_applies_otherwise() {
    let permit = consent("c-permit", json!({"type": "permit", "purpose": treat()}));
    let deny_r = consent(
        "c-deny-r",
        json!({"type": "deny", "securityLabel": [{"code": "R"}]}),
    );
    let both = [permit.clone(), deny_r.clone()];
    assert!(admit(&both, &o1()));
    let a = admit_with(&facts(), &both, &obs("o", "R", "1", "2022-01-01"));
    assert!(!a.permit);
    assert!(matches!(&a.reasons[0], Reason::Consent { consent, .. } if &**consent == "c-deny-r"));
    // Only a conditional consent: for resources it does not cover, the default policy answers.
    let e = engine(DefaultPolicy::Permit).evaluate(&facts(), std::slice::from_ref(&deny_r));
    let a = e.admit(&ResourceFacts::new(&o1()).unwrap());
    assert!(a.permit);
    assert_eq!(
        a.reasons[0],
        Reason::DefaultPolicy {
            effect: Effect::Permit
        }
    );
}

#[test]
fn inactive_consents_never_apply() {
    for status in [
        "inactive",
        "entered-in-error",
        "draft",
        "proposed",
        "rejected",
    ] {
        let mut c = (*consent("c", json!({"type": "permit"}))).clone();
        c.status = match status {
            "inactive" => ConsentStatus::Inactive,
            "entered-in-error" => ConsentStatus::EnteredInError,
            "draft" => ConsentStatus::Draft,
            "proposed" => ConsentStatus::Proposed,
            _ => ConsentStatus::Rejected,
        };
        let e = engine(DefaultPolicy::Deny).evaluate(&facts(), &[Arc::new(c)]);
        assert_eq!(e.decision().outcome, Outcome::Deny, "{status}");
        assert_eq!(
            e.decision().reasons[0],
            Reason::DefaultPolicy {
                effect: Effect::Deny
            }
        );
    }
}

#[test]
fn pre_decision_is_three_valued() {
    let eng = engine(DefaultPolicy::Deny);
    // No consent, default deny: nothing can be visible.
    let e = eng.evaluate(&facts(), &[]);
    assert_eq!(e.decision().outcome, Outcome::Deny);
    // A plain permit: everything.
    let e = eng.evaluate(&facts(), &permit_if(json!({"purpose": treat()})));
    assert_eq!(e.decision().outcome, Outcome::Permit);
    assert!(e.decision().obligations.is_empty());
    // A permit with a label exception: per resource.
    let c = vec![consent(
        "c",
        json!({"type": "permit", "purpose": treat(),
        "provision": [{"type": "deny", "securityLabel": [{"code": "R"}]}, {"type": "deny", "dataPeriod": {"end": "2000"}}]}),
    )];
    let e = eng.evaluate(&facts(), &c);
    assert_eq!(e.decision().outcome, Outcome::PermitWithFilter);
    assert_eq!(
        e.decision().obligations,
        vec![
            Obligation::FilterEntries {
                on: vec![FilterAxis::SecurityLabel, FilterAxis::DataPeriod]
            },
            Obligation::SuppressTotal
        ]
    );
    // Exceptions the request facts rule out do not make it conditional.
    let c = vec![consent(
        "c",
        json!({"type": "permit", "purpose": treat(),
        "provision": [{"type": "deny", "purpose": [{"system": AR, "code": "HRESCH"}], "securityLabel": [{"code": "R"}]}]}),
    )];
    assert_eq!(
        eng.evaluate(&facts(), &c).decision().outcome,
        Outcome::Permit
    );
    // A deny that always applies makes resource-dependent permits irrelevant.
    let c = vec![
        consent("c1", json!({"type": "deny"})),
        consent(
            "c2",
            json!({"type": "permit", "securityLabel": [{"code": "N"}]}),
        ),
    ];
    let e = eng.evaluate(&facts(), &c);
    assert_eq!(e.decision().outcome, Outcome::Deny);
    assert!(
        matches!(&e.decision().reasons[0], Reason::Consent { consent, .. } if &**consent == "c1")
    );
    // Siblings that always match: deny wins, exactly.
    let c = vec![consent(
        "c",
        json!({"type": "permit", "provision": [{"type": "permit"}, {"type": "deny"}]}),
    )];
    assert_eq!(eng.evaluate(&facts(), &c).decision().outcome, Outcome::Deny);
    // Cross-border with a named permit: labels decide, so Cedar leaves a residual.
    let mut fr = facts();
    fr.country = Some("FR".into());
    let c = permit_if(json!({"actor": [{"reference": {"reference": "Organization/h1"}}]}));
    let e = eng.evaluate(&fr, &c);
    assert_eq!(e.decision().outcome, Outcome::PermitWithFilter);
    assert_eq!(
        e.decision().obligations[0],
        Obligation::FilterEntries {
            on: vec![FilterAxis::OrganisationPolicy]
        }
    );
    assert!(e.admit(&ResourceFacts::new(&o1()).unwrap()).permit);
    assert!(
        !e.admit(&ResourceFacts::new(&obs("o2", "R", "1", "2022")).unwrap())
            .permit
    );
}

#[test]
fn named_organisation_is_inherited_from_ancestors() {
    let mut fr = facts();
    fr.country = Some("FR".into());
    let c = vec![consent(
        "c",
        json!({"type": "deny", "actor": [{"reference": {"reference": "Organization/h1"}}],
        "provision": [{"type": "permit", "purpose": treat()}]}),
    )];
    let e = engine(DefaultPolicy::Deny).evaluate(&fr, &c);
    assert!(e.admit(&ResourceFacts::new(&o1()).unwrap()).permit);
    // Named only through the principal's Group, not its organisation: not enough to cross.
    let c = vec![consent(
        "c",
        json!({"type": "permit", "actor": [{"reference": {"reference": "Group/team"}}]}),
    )];
    let e = engine(DefaultPolicy::Deny).evaluate(&fr, &c);
    assert_eq!(e.decision().outcome, Outcome::Deny);
}

#[test]
fn decisions_serialise_for_the_record() {
    let c = vec![consent(
        "c",
        json!({"type": "permit", "purpose": treat(),
        "provision": [{"type": "deny", "securityLabel": [{"code": "R"}]}]}),
    )];
    let e = engine(DefaultPolicy::Deny).evaluate(&facts(), &c);
    let mut d = e.decision().clone();
    for r in [
        o1(),
        obs("o2", "R", "1", "2022"),
        obs("o3", "R", "1", "2022"),
    ] {
        d.record(&e.admit(&ResourceFacts::new(&r).unwrap()));
    }
    assert!(d.removed_any());
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(
        v,
        json!({
            "outcome": "permit-with-filter",
            "obligations": [{"kind": "filter-entries", "on": ["securityLabel"]}, {"kind": "suppress-total"}],
            "break_glass": false,
            "reasons": [{"kind": "consent", "consent": "c", "version": "2", "provision": "Consent.provision.provision[0]", "effect": "deny"}],
            "filtered": {"admitted": 1, "removed": 2}
        })
    );
    let back: Decision = serde_json::from_value(v).unwrap();
    assert_eq!(back, d);
    let read = e.decide(&ResourceFacts::new(&o1()).unwrap());
    let v = serde_json::to_value(&read).unwrap();
    assert_eq!(v["outcome"], "permit");
    assert_eq!(
        v["reasons"][1],
        json!({"kind": "policy", "policy": "consent", "effect": "permit",
        "description": "The patient's consents, or the default policy when none applies, permit the disclosure."})
    );
}

#[test]
fn cedar_entities_are_shared_across_requests() {
    let c = vec![consent(
        "c",
        json!({"type": "permit", "purpose": treat(),
        "provision": [{"type": "deny", "securityLabel": [{"code": "R"}]}]}),
    )];
    let e = engine(DefaultPolicy::Deny).evaluate(&facts(), &c);
    for i in 0..20 {
        let label = if i % 2 == 0 { "N" } else { "R" };
        e.admit(&ResourceFacts::new(&obs(&format!("o{i}"), label, "1", "2022")).unwrap());
    }
    let org = e.engine.org();
    let before = e.cedar.clone();
    assert!(Arc::ptr_eq(&before, &org.prepare(&facts())));
}

#[test]
fn combine_is_deny_wins_with_neutral_nothing() {
    assert_eq!(combine(NOTHING, PERMIT), PERMIT);
    assert_eq!(combine(DENY, PERMIT | NOTHING), DENY);
    assert_eq!(combine(PERMIT | NOTHING, PERMIT_NAMED), PERMIT_NAMED);
    assert_eq!(
        combine(PERMIT | NOTHING, DENY | NOTHING),
        PERMIT | DENY | NOTHING
    );
}

/// Random consents and resources: a Permit or Deny pre-decision must agree with every resource's
/// admission, and a resource's consent-layer answer must be among the enumerated possibilities.
#[test]
fn pre_decision_agrees_with_admission_on_random_cases() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let conditions = [
        json!({}),
        json!({"purpose": treat()}),
        json!({"purpose": [{"system": AR, "code": "HRESCH"}]}),
        json!({"actor": [{"reference": {"reference": "Organization/h1"}}]}),
        json!({"actor": [{"reference": {"reference": "Organization/h2"}}]}),
        json!({"securityLabel": [{"code": "R"}]}),
        json!({"class": [{"code": "Condition"}]}),
        json!({"code": [{"coding": [{"system": "http://loinc.org", "code": "1"}]}]}),
        json!({"dataPeriod": {"start": "2022-01-01", "end": "2022-12-31"}}),
        json!({"data": [{"meaning": "instance", "reference": {"reference": "Observation/o2"}}]}),
    ];
    let resources = [
        o1(),
        obs("o2", "R", "2", "2021-06-01"),
        obs("o3", "R", "1", "2022"),
        json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p"}}),
    ];
    let gen = |depth: u32, next: &mut dyn FnMut(u64) -> u64| -> Value {
        fn build(depth: u32, next: &mut dyn FnMut(u64) -> u64, conds: &[Value]) -> Value {
            let mut p = conds[next(conds.len() as u64) as usize].clone();
            p["type"] = json!(if next(2) == 0 { "permit" } else { "deny" });
            if depth > 0 {
                let kids: Vec<Value> = (0..next(3))
                    .map(|_| build(depth - 1, next, conds))
                    .collect();
                if !kids.is_empty() {
                    p["provision"] = json!(kids);
                }
            }
            p
        }
        build(depth, next, &conditions)
    };
    for case in 0..400 {
        let n = 1 + next(3);
        let consents: Vec<Arc<ConsentModel>> = (0..n)
            .map(|i| consent(&format!("c{i}"), gen(2, &mut next)))
            .collect();
        let mut f = facts();
        if next(4) == 0 {
            f.country = Some("FR".into());
        }
        let default = if next(2) == 0 {
            DefaultPolicy::Deny
        } else {
            DefaultPolicy::Permit
        };
        let e = engine(default).evaluate(&f, &consents);
        let (set, _) = e.possibilities();
        for r in &resources {
            let rf = ResourceFacts::new(r).unwrap();
            let layer = e.layer(Some(&rf));
            let bit = match (
                layer.input.by_default,
                layer.input.effect,
                layer.input.names_organization,
            ) {
                (true, ..) => NOTHING,
                (false, Effect::Deny, _) => DENY,
                (false, Effect::Permit, false) => PERMIT,
                (false, Effect::Permit, true) => PERMIT_NAMED,
            };
            assert!(set & bit != 0, "case {case}: {bit} not in {set}");
            let a = e.admit(&rf);
            match e.decision().outcome {
                Outcome::Permit => assert!(a.permit, "case {case}"),
                Outcome::Deny => assert!(!a.permit, "case {case}"),
                Outcome::PermitWithFilter => {
                    // Bypass the constant shortcut to compare with a fresh per-resource judgement.
                }
            }
            if e.decision().outcome != Outcome::PermitWithFilter {
                let fresh = RequestEvaluation {
                    engine: e.engine.clone(),
                    consents: e
                        .consents
                        .iter()
                        .map(|c| Pruned {
                            model: c.model.clone(),
                            flags: c.flags.clone(),
                        })
                        .collect(),
                    cedar: e.engine.org().prepare(&f),
                    decision: e.decision.clone(),
                    constant: None,
                };
                assert_eq!(
                    fresh.admit(&rf).permit,
                    a.permit,
                    "case {case}: constant pre-decision disagrees"
                );
            }
        }
    }
}

#[test]
fn evaluations_can_cross_await_points_and_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PolicyEngine>();
    send_sync::<RequestEvaluation>();
    send_sync::<Decision>();
}
