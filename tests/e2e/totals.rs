//! Issue 17, through the real binary in front of the real test EHR: a `Bundle.total` never counts what
//! the principal may not see (`_summary=count`, `_count=0`, a page of many, anything withheld by
//! consent or by granular scopes, on the JSON and the XML path), and the one answer that cannot
//! disclose anything, a single complete page shown whole, keeps its total.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::sync::OnceLock;

use anchorgate_e2e::{
    anonymous_client, client, client_as, mint, put_resource, put_resources, Gateway, Upstream,
};
use serde_json::{json, Value};

const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// An Observation of `patient`, labelled `conf` (`R`: the consent below withholds it).
fn obs(id: &str, patient: &str, conf: &str, category: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
        "meta": {"security": [{"system": CONFIDENTIALITY, "code": conf}]},
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": "2022-01-01", "valueString": format!("value of {id}")})
}

/// Patient `tot-t` lets treating clinicians see everything but what is labelled restricted.
fn consent() -> Value {
    json!({"resourceType": "Consent", "id": "c-tot", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/tot-t"}, "dateTime": "2024-01-01",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit",
            "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
            "provision": [{"type": "deny", "securityLabel": [{"system": CONFIDENTIALITY, "code": "R"}]}]}})
}

/// The store, loaded once into the shared upstream, and one gateway holding the consent:
/// `tot-t` with four visible Observations and two withheld (`tot-h`'s restricted first version
/// was deleted and re-created unrestricted); `tot-v` (no consent: the tests' opt-out default shows
/// it all) with a laboratory and a vital-signs one.
fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| {
        let up = Upstream::shared();
        let mut all = vec![
            json!({"resourceType": "Patient", "id": "tot-t", "name": [{"family": "Tally"}]}),
            json!({"resourceType": "Patient", "id": "tot-v", "name": [{"family": "Vee"}]}),
        ];
        for (id, conf) in [
            ("tot-t1", "N"),
            ("tot-t2", "R"),
            ("tot-t3", "N"),
            ("tot-t4", "R"),
            ("tot-t5", "N"),
        ] {
            all.push(obs(id, "tot-t", conf, "vital-signs"));
        }
        all.push(obs("tot-v1", "tot-v", "N", "laboratory"));
        all.push(obs("tot-v2", "tot-v", "N", "vital-signs"));
        let mut first = obs("tot-h", "tot-t", "R", "vital-signs");
        first["valueString"] = json!("restricted first version");
        all.push(first);
        put_resources(&up.base, &all);
        let gone = anonymous_client()
            .delete(format!("{}/Observation/tot-h", up.base))
            .send()
            .unwrap();
        assert!(gone.status().is_success(), "{}", gone.status());
        put_resources(&up.base, &[obs("tot-h", "tot-t", "N", "vital-signs")]);
        let gw = Gateway::start(&up.base);
        put_resource(&gw.base, &consent());
        gw
    })
}

/// A treating clinician's token; `scope` defaults to `user/*.rs`.
fn clinician(scope: &str) -> String {
    mint(
        json!({"sub": "Practitioner/prac-a", "fhirUser": "Practitioner/prac-a", "client_id": "ehr",
        "scope": scope,
        "extensions": {"hl7-b2b": {"organization_id": "Organization/org-h1", "purpose_of_use": ["TREAT"]}}}),
    )
}

/// `GET url` as `token`: the body, and the decision record's id.
fn fetch(token: &str, url: &str) -> (String, String) {
    let r = client_as(token).get(url).send().unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let decision = r.headers()["x-anchorgate-decision"]
        .to_str()
        .unwrap()
        .to_owned();
    (r.text().unwrap(), decision)
}

fn search(gw: &Gateway, token: &str, query: &str) -> (Value, String) {
    let (text, decision) = fetch(token, &format!("{}/{query}", gw.base));
    (serde_json::from_str(&text).unwrap(), decision)
}

/// The ids of a Bundle's match entries.
fn matches(b: &Value) -> BTreeSet<String> {
    b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.pointer("/search/mode").is_none_or(|m| m == "match"))
        .filter_map(|e| e.pointer("/resource/id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

fn next_link(b: &Value) -> Option<String> {
    b["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// The decision record `id`'s obligations, once the recorder has written it.
fn obligations(gw: &Gateway, id: &str) -> Value {
    for _ in 0..50 {
        let r = client()
            .get(format!("{}/audit/decisions/{id}", gw.root()))
            .send()
            .unwrap();
        if r.status() == 200 {
            return r.json::<Value>().unwrap()["decision"]["obligations"].clone();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("decision {id} never recorded");
}

fn suppressed(gw: &Gateway, id: &str) -> bool {
    obligations(gw, id)
        .as_array()
        .is_some_and(|o| o.iter().any(|o| o == "suppress-total"))
}

#[test]
fn counts_never_disclose_what_is_withheld() {
    let gw = gateway();
    let dr = clinician("user/*.rs");
    let visible: BTreeSet<String> = ["tot-t1", "tot-t3", "tot-t5", "tot-h"]
        .map(str::to_owned)
        .into();

    // The EHR counts all six; the clinician may see four.
    for q in ["_summary=count", "_count=0"] {
        let (b, decision) = search(gw, &dr, &format!("Observation?subject=Patient/tot-t&{q}"));
        assert!(b.get("total").is_none(), "{q}: {b}");
        assert!(suppressed(gw, &decision), "{q}: suppress-total recorded");
    }
    let (b, _) = search(gw, &dr, "Observation?subject=Patient/tot-t");
    assert_eq!(matches(&b), visible, "{b}");
    assert!(b.get("total").is_none(), "two were withheld: {b}");

    // Page by page, through the sealed cursors: no page states a total, the pages show the four.
    let (mut page, _) = search(gw, &dr, "Observation?subject=Patient/tot-t&_count=2");
    let mut seen = BTreeSet::new();
    for _ in 0..5 {
        assert!(page.get("total").is_none(), "{page}");
        seen.extend(matches(&page));
        let Some(next) = next_link(&page) else { break };
        page = serde_json::from_str(&fetch(&dr, &next).0).unwrap();
    }
    assert_eq!(seen, visible);

    // The tree path (XML) decides the same.
    let (xml, _) = fetch(
        &dr,
        &format!(
            "{}/Observation?subject=Patient/tot-t&_summary=count&_format=xml",
            gw.base
        ),
    );
    assert!(xml.contains("<Bundle") && !xml.contains("<total"), "{xml}");

    // $everything counts the withheld too.
    let (b, _) = search(gw, &dr, "Patient/tot-t/$everything");
    assert!(b.get("total").is_none(), "{b}");
    assert!(!b.to_string().contains("tot-t2"), "{b}");

    // A complete page shown whole keeps its total, includes beside it, on both paths; its count
    // alone still goes without one (it shows no match to count).
    let (b, decision) = search(gw, &dr, "Observation?subject=Patient/tot-v");
    assert_eq!(b["total"], 2, "{b}");
    assert!(!suppressed(gw, &decision), "nothing suppressed");
    let (b, _) = search(
        gw,
        &dr,
        "Observation?subject=Patient/tot-v&_include=Observation:subject",
    );
    assert_eq!(b["total"], 2, "{b}");
    let (xml, _) = fetch(
        &dr,
        &format!("{}/Observation?subject=Patient/tot-v&_format=xml", gw.base),
    );
    assert!(xml.contains(r#"<total value="2"/>"#), "{xml}");
    let (b, _) = search(gw, &dr, "Observation?subject=Patient/tot-v&_summary=count");
    assert!(b.get("total").is_none(), "{b}");

    // Granular scopes: a laboratory-only token sees one of tot-v's two.
    let lab = clinician(&format!(
        "user/Observation.rs?category={CATEGORY}|laboratory"
    ));
    for q in ["", "&_summary=count", "&_count=0", "&_count=1"] {
        let (b, _) = search(gw, &lab, &format!("Observation?subject=Patient/tot-v{q}"));
        assert!(b.get("total").is_none(), "{q}: {b}");
        assert!(!matches(&b).contains("tot-v2"), "{q}: {b}");
    }
}

#[test]
fn a_history_counts_only_what_it_shows() {
    let gw = gateway();
    let dr = clinician("user/*.rs");
    // One version, shown: its total stays.
    let (b, _) = search(gw, &dr, "Observation/tot-v1/_history");
    assert_eq!(b["total"], 1, "{b}");
    // Newest first: the unrestricted re-creation, the deletion (no resource), the restricted first
    // version. The first version is withheld on both paths, and the total with it.
    for q in ["", "?_format=xml"] {
        let (text, _) = fetch(&dr, &format!("{}/Observation/tot-h/_history{q}", gw.base));
        assert!(!text.contains("restricted first version"), "{q}: {text}");
        assert!(
            !text.contains("\"total\"") && !text.contains("<total"),
            "{q}: {text}"
        );
        assert!(text.contains("value of tot-h"), "{q}: {text}");
    }
}
