#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;

const LAB: &str = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
/// The scenario principal `dr-a-lab-only` (consent-scenarios/scenarios.json, `granular-smart-scope`).
const LAB_ONLY: &str =
    "user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";

fn obs(category_code: &str) -> serde_json::Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": category_code
        }]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "Hb"}
    })
}

fn no_compartment(_: &serde_json::Value) -> bool {
    false
}

#[test]
fn scenario_lab_only_principal() {
    let scopes = Scopes::parse(LAB_ONLY);
    let read = scopes.check("Observation", Permission::Read);
    assert_eq!(
        read,
        ScopeDecision::Granted {
            restrictions: vec![Restriction {
                context: Context::User,
                params: vec![("category".into(), LAB.into())]
            }]
        }
    );
    // obs-o2 (laboratory) is readable, obs-o1 (another category) is not.
    assert!(read.permits(&obs("laboratory"), no_compartment));
    assert!(!read.permits(&obs("social-history"), no_compartment));
    assert!(!scopes.check("Observation", Permission::Search).is_denied());
    assert_eq!(
        scopes
            .check("Observation", Permission::Search)
            .search_narrowing(),
        SearchNarrowing::Append(vec![("category".into(), LAB.into())])
    );
    for p in [Permission::Create, Permission::Update, Permission::Delete] {
        assert!(scopes.check("Observation", p).is_denied(), "{p:?}");
    }
    assert!(scopes.check("Condition", Permission::Read).is_denied());
    assert!(scopes.check("Patient", Permission::Read).is_denied());
}

#[test]
fn scenario_wildcard_principals() {
    for s in ["user/*.rs", "system/*.rs"] {
        let scopes = Scopes::parse(s);
        let d = scopes.check("Observation", Permission::Read);
        assert_eq!(
            d,
            ScopeDecision::Granted {
                restrictions: vec![]
            }
        );
        assert_eq!(d.search_narrowing(), SearchNarrowing::Unrestricted);
        assert!(d.permits(&obs("anything"), no_compartment));
        assert!(scopes.check("Patient", Permission::Search).is_granted());
        assert!(scopes.check("Patient", Permission::Create).is_denied());
    }
}

#[test]
fn v1_aliases() {
    let s = Scopes::parse("patient/Observation.read user/Condition.write system/Patient.*");
    assert!(s.check("Observation", Permission::Read).is_granted());
    assert!(s.check("Observation", Permission::Search).is_granted());
    assert!(s.check("Observation", Permission::Create).is_denied());
    for p in [Permission::Create, Permission::Update, Permission::Delete] {
        assert!(s.check("Condition", p).is_granted(), "{p:?}");
    }
    assert!(s.check("Condition", Permission::Read).is_denied());
    assert!(s.check("Condition", Permission::Search).is_denied());
    for p in [
        Permission::Create,
        Permission::Read,
        Permission::Update,
        Permission::Delete,
        Permission::Search,
    ] {
        assert!(s.check("Patient", p).is_granted(), "{p:?}");
    }
}

#[test]
fn v2_permission_letters_are_an_ordered_subset_of_cruds() {
    let ok = |p: &str| ResourceScope::parse(&format!("user/Observation.{p}")).is_some();
    for p in ["c", "r", "rs", "cruds", "cud", "ds", "cu"] {
        assert!(ok(p), "{p}");
    }
    for p in ["", "sr", "rr", "x", "crudsx", "READ", "rw"] {
        assert!(!ok(p), "{p}");
    }
    let s = ResourceScope::parse("user/Observation.cd").unwrap();
    assert!(s.allows(Permission::Create) && s.allows(Permission::Delete));
    assert!(!s.allows(Permission::Read));
}

#[test]
fn non_resource_and_malformed_scopes_grant_nothing() {
    let s = Scopes::parse(
        "openid fhirUser launch launch/patient offline_access online_access \
         user/Unicorn.rs users/Observation.rs user/Observation user/Observation.rs?category \
         user/Observation.rs?category:not=x user/Observation.rs?=x",
    );
    assert!(s.resource.is_empty(), "{:?}", s.resource);
    assert!(s.has("openid") && s.has("launch/patient"));
    assert!(!s.has("open"));
    assert!(s.check("Observation", Permission::Read).is_denied());
    assert!(Scopes::parse("")
        .check("Patient", Permission::Read)
        .is_denied());
}

#[test]
fn restrictions_add_up_and_an_unrestricted_scope_wins() {
    let s = Scopes::parse(&format!(
        "user/Observation.rs?category={LAB} user/Observation.rs?category=vital-signs"
    ));
    let d = s.check("Observation", Permission::Read);
    let ScopeDecision::Granted { restrictions } = &d else {
        panic!("granted")
    };
    assert_eq!(restrictions.len(), 2);
    assert!(d.permits(&obs("laboratory"), no_compartment));
    assert!(d.permits(&obs("vital-signs"), no_compartment));
    assert!(!d.permits(&obs("imaging"), no_compartment));
    assert_eq!(
        d.search_narrowing(),
        SearchNarrowing::Append(vec![("category".into(), format!("{LAB},vital-signs"))])
    );
    let s = Scopes::parse(&format!(
        "user/Observation.rs?category={LAB} user/Observation.r"
    ));
    assert_eq!(
        s.check("Observation", Permission::Read),
        ScopeDecision::Granted {
            restrictions: vec![]
        }
    );
    // The unrestricted scope has no `s`: searches stay restricted.
    assert!(matches!(
        s.check("Observation", Permission::Search)
            .search_narrowing(),
        SearchNarrowing::Append(_)
    ));
}

#[test]
fn different_parameters_can_only_be_filtered() {
    let s = Scopes::parse(&format!(
        "user/Observation.rs?category={LAB} user/Observation.rs?status=final"
    ));
    let d = s.check("Observation", Permission::Search);
    assert_eq!(d.search_narrowing(), SearchNarrowing::FilterOnly);
    let s = Scopes::parse(&format!("user/Observation.rs?category={LAB}&status=final"));
    let d = s.check("Observation", Permission::Search);
    assert_eq!(
        d.search_narrowing(),
        SearchNarrowing::Append(vec![
            ("category".into(), LAB.into()),
            ("status".into(), "final".into())
        ])
    );
    // Parameters of one scope are ANDed.
    assert!(d.permits(&obs("laboratory"), no_compartment));
    let mut prelim = obs("laboratory");
    prelim["status"] = json!("preliminary");
    assert!(!d.permits(&prelim, no_compartment));
}

#[test]
fn patient_context_needs_the_compartment() {
    let s = Scopes::parse("patient/Observation.rs");
    let d = s.check("Observation", Permission::Read);
    assert_eq!(
        d,
        ScopeDecision::Granted {
            restrictions: vec![Restriction {
                context: Context::Patient,
                params: vec![]
            }]
        }
    );
    assert!(!d.permits(&obs("laboratory"), no_compartment));
    assert!(d.permits(&obs("laboratory"), |_| true));
    assert_eq!(d.search_narrowing(), SearchNarrowing::FilterOnly);
    assert_eq!(
        ScopeDecision::Denied.search_narrowing(),
        SearchNarrowing::FilterOnly
    );
    assert!(!ScopeDecision::Denied.permits(&obs("laboratory"), |_| true));
}

#[test]
fn granular_values_are_percent_decoded() {
    let s = ResourceScope::parse(
        "user/Observation.rs?category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory",
    )
    .unwrap();
    assert_eq!(s.params, vec![("category".into(), LAB.into())]);
}

fn restriction(name: &str, value: &str) -> Restriction {
    Restriction {
        context: Context::User,
        params: vec![(name.into(), value.into())],
    }
}

#[test]
fn token_matching_on_element_kinds() {
    let o = obs("laboratory");
    let m = |n: &str, v: &str| resource_matches(&restriction(n, v), &o);
    // CodeableConcept array.
    assert!(m("category", LAB));
    assert!(m("category", "laboratory"));
    assert!(m(
        "category",
        "http://terminology.hl7.org/CodeSystem/observation-category|"
    ));
    assert!(!m("category", "|laboratory"));
    assert!(!m("category", "http://other|laboratory"));
    assert!(m("category", "vital-signs,laboratory"));
    // CodeableConcept.
    assert!(m("code", "http://loinc.org|718-7"));
    assert!(m("code", "718-7"));
    assert!(!m("code", "http://loinc.org|1234-5"));
    // code.
    assert!(m("status", "final"));
    assert!(!m("status", "http://hl7.org/fhir/observation-status|final"));
    assert!(!m("status", "amended"));
    // Absent elements, modifiers and unknown underscore parameters never match.
    assert!(!m("interpretation", "H"));
    assert!(!m("category:not", "laboratory"));
    assert!(!m("_id", "x"));
}

#[test]
fn token_matching_on_coding_identifier_bool_and_meta() {
    let r = json!({
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "identifier": [{"system": "urn:sys", "value": "A,1"}],
        "active": true,
        "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
                 "tag": [{"code": "nosys"}]}
    });
    let m = |n: &str, v: &str| resource_matches(&restriction(n, v), &r);
    assert!(m("clinical-status", "active"));
    assert!(m("identifier", "urn:sys|A\\,1"));
    assert!(!m("identifier", "urn:sys|A"));
    assert!(m("active", "true"));
    assert!(!m("active", "false"));
    assert!(m(
        "_security",
        "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R"
    ));
    assert!(m("_tag", "|nosys"));
    assert!(!m("_tag", "a|b|c"));
    // A Coding element (not a CodeableConcept).
    let coding = json!({"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}});
    assert!(resource_matches(
        &restriction(
            "class",
            "http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"
        ),
        &coding
    ));
}
