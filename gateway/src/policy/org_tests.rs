#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn facts(purpose: Option<&str>, country: &str, groups: &[&str]) -> RequestFacts {
    RequestFacts {
        principal: "Practitioner/prac-a".into(),
        fhir_user: Some("Practitioner/prac-a".into()),
        organization: Some("Organization/org-h1".into()),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        purpose: purpose.map(str::to_owned),
        action: ActionKind::Read,
        now: 0,
        country: Some(country.into()),
    }
}

const CONSENT_PERMIT: LayerInput = LayerInput {
    effect: Effect::Permit,
    by_default: false,
    names_organization: false,
};
const DEFAULT_DENY: LayerInput = LayerInput {
    effect: Effect::Deny,
    by_default: true,
    names_organization: false,
};

fn ids(v: &OrgVerdict) -> Vec<&str> {
    v.reasons
        .iter()
        .map(|r| match r {
            Reason::Policy { policy, .. } => &**policy,
            _ => "",
        })
        .collect()
}

fn err(toml: &str, cedar: &[(&str, &str)]) -> String {
    OrgPolicies::from_sources(toml, cedar)
        .unwrap_err()
        .to_string()
}

#[test]
fn shipped_policies_load_and_match_the_directory() {
    let org = OrgPolicies::shipped().unwrap();
    assert_eq!(org.home_country(), "GB");
    assert_eq!(
        org.policy_ids(),
        [
            "break-glass",
            "consent",
            "cross-border-named-recipient",
            "cross-border-restricted",
            "forbidden-purpose",
            "purpose-required"
        ]
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let from_dir = OrgPolicies::load_dir(&dir).unwrap();
    assert_eq!(from_dir.policy_ids(), org.policy_ids());
}

#[test]
fn request_level_rules() {
    let org = OrgPolicies::shipped().unwrap();
    let judge = |f: &RequestFacts, l| org.request_verdict(&org.prepare(f), l);
    let v = judge(&facts(Some("TREAT"), "GB", &[]), CONSENT_PERMIT);
    assert_eq!((v.permit, v.alert), (Some(true), false));
    assert_eq!(ids(&v), ["consent"]);
    let v = judge(&facts(Some("HMARKT"), "GB", &[]), CONSENT_PERMIT);
    assert_eq!(v.permit, Some(false));
    assert_eq!(ids(&v), ["forbidden-purpose"]);
    let v = judge(&facts(None, "GB", &[]), CONSENT_PERMIT);
    assert_eq!(ids(&v), ["purpose-required"]);
    // No permit at all: denied with no policy to cite (the consent layer's reasons say why).
    let v = judge(&facts(Some("TREAT"), "GB", &[]), DEFAULT_DENY);
    assert_eq!((v.permit, ids(&v).len()), (Some(false), 0));
}

#[test]
fn break_glass_needs_purpose_and_membership() {
    let org = OrgPolicies::shipped().unwrap();
    let judge = |f: &RequestFacts, l| org.request_verdict(&org.prepare(f), l);
    let v = judge(
        &facts(Some("ETREAT"), "GB", &["Group/grp-btg"]),
        DEFAULT_DENY,
    );
    assert_eq!((v.permit, v.alert), (Some(true), true));
    assert_eq!(ids(&v), ["break-glass"]);
    let v = judge(
        &facts(Some("BTG"), "GB", &["https://h/fhir/Group/grp-btg"]),
        DEFAULT_DENY,
    );
    assert_eq!((v.permit, v.alert), (Some(true), true));
    let v = judge(&facts(Some("ETREAT"), "GB", &["Group/other"]), DEFAULT_DENY);
    assert_eq!(v.permit, Some(false));
    let v = judge(
        &facts(Some("TREAT"), "GB", &["Group/grp-btg"]),
        DEFAULT_DENY,
    );
    assert_eq!(v.permit, Some(false));
    // Permitted anyway: break-glass is not what granted access, so no alert.
    let v = judge(
        &facts(Some("ETREAT"), "GB", &["Group/grp-btg"]),
        CONSENT_PERMIT,
    );
    assert_eq!((v.permit, v.alert), (Some(true), false));
    // Writes are not break-glass interactions.
    let mut f = facts(Some("ETREAT"), "GB", &["Group/grp-btg"]);
    f.action = ActionKind::Write;
    assert_eq!(judge(&f, DEFAULT_DENY).permit, Some(false));
}

#[test]
fn break_glass_actor_sets_cover_principal_and_organisation() {
    let toml = "home_country = \"GB\"\n[purposes]\nbreak-glass = [\"ETREAT\"]\nforbidden = []\n[actors]\nbreak-glass = [\"Practitioner/prac-a\", \"Organization/org-er\"]\n";
    let org = OrgPolicies::from_sources(toml, &[("org.cedar", SHIPPED_CEDAR)]).unwrap();
    let mut f = facts(Some("ETREAT"), "GB", &[]);
    assert_eq!(
        org.request_verdict(&org.prepare(&f), DEFAULT_DENY).permit,
        Some(true)
    );
    f.fhir_user = Some("Practitioner/prac-b".into());
    f.principal = "Practitioner/prac-b".into();
    assert_eq!(
        org.request_verdict(&org.prepare(&f), DEFAULT_DENY).permit,
        Some(false)
    );
    f.organization = Some("Organization/org-er".into());
    assert_eq!(
        org.request_verdict(&org.prepare(&f), DEFAULT_DENY).permit,
        Some(true)
    );
}

#[test]
fn cross_border_is_decided_per_resource() {
    let org = OrgPolicies::shipped().unwrap();
    let fr = facts(Some("TREAT"), "FR", &[]);
    let req = org.prepare(&fr);
    // Unnamed permit: refused whatever the resource.
    let v = org.request_verdict(&req, CONSENT_PERMIT);
    assert_eq!(v.permit, Some(false));
    assert_eq!(ids(&v), ["cross-border-named-recipient"]);
    // Named permit: depends on the resource's confidentiality.
    let named = LayerInput {
        names_organization: true,
        ..CONSENT_PERMIT
    };
    assert_eq!(org.request_verdict(&req, named).permit, None);
    let v = org.resource_verdict(&req, named, "Observation", &["N"]);
    assert_eq!(v.permit, Some(true));
    let v = org.resource_verdict(&req, named, "Observation", &["R"]);
    assert_eq!(v.permit, Some(false));
    assert_eq!(ids(&v), ["cross-border-restricted"]);
    assert_eq!(
        org.resource_verdict(&req, named, "Observation", &["V", "N"])
            .permit,
        Some(false)
    );
    // Unknown country is not the home country.
    let mut nowhere = facts(Some("TREAT"), "GB", &[]);
    nowhere.country = None;
    assert_eq!(
        org.request_verdict(&org.prepare(&nowhere), CONSENT_PERMIT)
            .permit,
        Some(false)
    );
    // A domestic request never depends on labels.
    let gb = org.prepare(&facts(Some("TREAT"), "GB", &[]));
    assert_eq!(org.request_verdict(&gb, CONSENT_PERMIT).permit, Some(true));
}

#[test]
fn bad_files_are_refused_precisely() {
    let cedar = [("org.cedar", SHIPPED_CEDAR)];
    let e = err("home_country = \"GB\"\nextra = 1\n", &cedar);
    assert!(e.starts_with("policy.toml:") && e.contains("extra"), "{e}");
    let e = err("home_country = \"Britain\"\n", &cedar);
    assert!(e.contains("ISO 3166"), "{e}");
    let e = err(
        "home_country = \"GB\"\n[actors]\nbreak-glass = [\"grp-btg\"]\n[purposes]\nbreak-glass = []\nforbidden = []\n",
        &cedar,
    );
    assert!(e.contains("\"grp-btg\""), "{e}");
    let e = err(
        "home_country = \"GB\"\n[purposes]\nforbidden = [\"H MARKT\"]\n",
        &cedar,
    );
    assert!(e.contains("H MARKT"), "{e}");
    let e = err(SHIPPED_TOML, &[]);
    assert!(e.contains("no Cedar policy file"), "{e}");
}

#[test]
fn bad_policies_are_refused_precisely() {
    let e = err(
        SHIPPED_TOML,
        &[(
            "a.cedar",
            "@id(\"x\")\npermit (principal, action, resource)\nwhen { context.consent == }; ",
        )],
    );
    assert!(e.starts_with("a.cedar:") && e.contains("line 3"), "{e}");
    let e = err(
        SHIPPED_TOML,
        &[("a.cedar", "permit (principal, action, resource);")],
    );
    assert!(
        e.contains("no @id") && e.contains("permit (principal, action, resource)"),
        "{e}"
    );
    let e = err(
        SHIPPED_TOML,
        &[
            (
                "a.cedar",
                "@id(\"x\") permit (principal, action, resource);",
            ),
            (
                "b.cedar",
                "@id(\"x\") forbid (principal, action, resource);",
            ),
        ],
    );
    assert!(e.starts_with("b.cedar:") && e.contains("duplicate"), "{e}");
    // Not in the schema.
    let e = err(
        SHIPPED_TOML,
        &[("a.cedar", "@id(\"nat\") forbid (principal, action, resource) when { principal.nationality == \"FR\" };")],
    );
    assert!(
        e.starts_with("a.cedar:") && e.contains("`nat`") && e.contains("nationality"),
        "{e}"
    );
    // An optional attribute used without `has`: it would error at run time, so it is refused now.
    let e = err(
        SHIPPED_TOML,
        &[("a.cedar", "@id(\"p\") forbid (principal, action, resource) when { context.purpose == Anchorgate::Purpose::\"X\" };")],
    );
    assert!(
        e.starts_with("a.cedar:")
            && e.contains("`p`")
            && e.contains("optional attribute `purpose`"),
        "{e}"
    );
    // A set the parameters do not define: a typo would make the forbid silently inert.
    let e = err(
        SHIPPED_TOML,
        &[("a.cedar", "@id(\"typo\") forbid (principal, action, resource) when { context has purpose && context.purpose in Anchorgate::PurposeSet::\"forbiden\" };")],
    );
    assert!(
        e.starts_with("a.cedar:") && e.contains("\"typo\"") && e.contains("forbiden"),
        "{e}"
    );
    let e = err(
        SHIPPED_TOML,
        &[(
            "a.cedar",
            "@id(\"t\") permit (principal == ?principal, action, resource);",
        )],
    );
    assert!(e.contains("templates"), "{e}");
}

#[test]
fn load_dir_names_the_missing_file() {
    let dir = std::env::temp_dir().join(format!("anchorgate-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = OrgPolicies::load_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("policy.toml"), "{e}");
    std::fs::write(dir.join("policy.toml"), SHIPPED_TOML).unwrap();
    std::fs::write(
        dir.join("z.cedar"),
        "@id(\"z\") permit (principal, action, resource) when { bogus };",
    )
    .unwrap();
    let e = OrgPolicies::load_dir(&dir).unwrap_err().to_string();
    assert!(e.starts_with("z.cedar:"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verdicts_are_cached_per_request_identity() {
    let org = OrgPolicies::shipped().unwrap();
    let a = org.prepare(&facts(Some("TREAT"), "GB", &["Group/x", "Group/y"]));
    let b = org.prepare(&facts(
        Some("TREAT"),
        "GB",
        &["Group/y", "Group/x", "Group/x"],
    ));
    assert!(Arc::ptr_eq(&a, &b), "same identity, same entry");
    for other in [
        facts(Some("ETREAT"), "GB", &["Group/x", "Group/y"]),
        facts(Some("TREAT"), "FR", &["Group/x", "Group/y"]),
        facts(Some("TREAT"), "GB", &["Group/x"]),
        facts(None, "GB", &["Group/x", "Group/y"]),
    ] {
        assert!(!Arc::ptr_eq(&a, &org.prepare(&other)));
    }
    let v1 = org.resource_verdict(&a, CONSENT_PERMIT, "Observation", &["N"]);
    let v2 = org.resource_verdict(&a, CONSENT_PERMIT, "Observation", &["N"]);
    assert!(Arc::ptr_eq(&v1, &v2));
    org.resource_verdict(&a, CONSENT_PERMIT, "Observation", &["R"]);
    org.resource_verdict(&a, CONSENT_PERMIT, "Condition", &["N"]);
    org.request_verdict(&a, CONSENT_PERMIT);
    // Not cached: a type outside R4 and a code outside v3-Confidentiality.
    org.resource_verdict(&a, CONSENT_PERMIT, "Unknown", &["N"]);
    org.resource_verdict(&a, CONSENT_PERMIT, "Observation", &["X"]);
    assert_eq!(a.verdicts.lock().unwrap().len(), 4);
    // The key cannot be forged by shifting text between fields.
    let mut f1 = facts(Some("TREAT"), "GB", &[]);
    f1.principal = "a:b".into();
    let mut f2 = f1.clone();
    f2.principal = "a".into();
    f2.fhir_user = Some(format!("b{}", f1.fhir_user.clone().unwrap()));
    assert_ne!(request_key(&f1), request_key(&f2));
}
