//! Tests of the base validator: hand-written resources per check, then Synthea data and the HL7 cases.

mod corpus;
mod examples;
mod profiles;

use serde_json::{json, Value};

use super::{is_valid, Validator};
use crate::fhir::outcome::{IssueType, OperationOutcome};

fn check(v: Value) -> OperationOutcome {
    Validator::r4().validate(&v)
}

/// The (code, expression) of every error.
fn errors(v: Value) -> Vec<(IssueType, String)> {
    check(v)
        .issues
        .into_iter()
        .map(|i| (i.code, i.expression.join(",")))
        .collect()
}

fn has(v: Value, code: IssueType, expr: &str) {
    let errs = errors(v);
    assert!(
        errs.iter().any(|(c, e)| *c == code && e == expr),
        "expected {code:?} at {expr}, got {errs:?}"
    );
}

#[test]
fn minimal_resources_are_valid() {
    for v in [
        json!({"resourceType": "Patient"}),
        json!({"resourceType": "Parameters"}),
        json!({"resourceType": "Patient", "id": "p-1.x", "gender": "female", "birthDate": "1970-01",
               "name": [{"family": "Ng", "given": ["A", "B"]}], "active": true,
               "multipleBirthInteger": 2, "deceasedDateTime": "2020-02-03T04:05:06+01:00"}),
    ] {
        let out = check(v.clone());
        assert!(is_valid(&out), "{v}: {out:?}");
    }
}

#[test]
fn unknown_resource_and_property() {
    has(
        json!({"resourceType": "Patiently"}),
        IssueType::Structure,
        "Patiently",
    );
    has(
        json!({"resourceType": "Patient", "unknownElement": 1}),
        IssueType::Structure,
        "Patient",
    );
    has(
        json!({"resourceType": "Patient", "fhir_comments": ["x"]}),
        IssueType::Structure,
        "Patient",
    );
    has(
        json!({"resourceType": "DomainResource"}),
        IssueType::Structure,
        "DomainResource",
    );
}

#[test]
fn cardinality_and_json_shape() {
    has(
        json!({"resourceType": "Observation", "status": "final"}),
        IssueType::Required,
        "Observation",
    );
    has(
        json!({"resourceType": "Patient", "name": {"family": "x"}}),
        IssueType::Structure,
        "Patient.name",
    );
    has(
        json!({"resourceType": "Patient", "gender": ["male"]}),
        IssueType::Structure,
        "Patient.gender",
    );
    has(
        json!({"resourceType": "Patient", "name": []}),
        IssueType::Invalid,
        "Patient.name",
    );
    has(
        json!({"resourceType": "Patient", "name": [{}]}),
        IssueType::Invariant,
        "Patient.name[0]",
    );
    has(
        json!({"resourceType": "Patient", "gender": null}),
        IssueType::Structure,
        "Patient.gender",
    );
    // Composition.subject is 0..1.
    let comp = json!({"resourceType": "Composition", "status": "final", "type": {"text": "t"},
        "date": "2020", "author": [{"display": "a"}], "title": "t",
        "subject": [{"display": "a"}]});
    has(comp, IssueType::Structure, "Composition.subject");
}

#[test]
fn choice_types() {
    let ok = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "valueQuantity": {"value": 1.5, "unit": "kg"}});
    assert!(is_valid(&check(ok)));
    has(
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "valueInteger": "7"}),
        IssueType::Invalid,
        "Observation.value.ofType(integer)",
    );
    has(
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "valueFoo": 1}),
        IssueType::Structure,
        "Observation",
    );
    has(
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "valueString": "a", "valueBoolean": true}),
        IssueType::Structure,
        "Observation",
    );
}

#[test]
fn primitives() {
    let p = |k: &str, v: Value| {
        let mut r = json!({"resourceType": "Patient"});
        r[k] = v;
        r
    };
    has(
        p("birthDate", json!("not a date")),
        IssueType::Invalid,
        "Patient.birthDate",
    );
    has(
        p("birthDate", json!("")),
        IssueType::Invalid,
        "Patient.birthDate",
    );
    has(
        p("active", json!("true")),
        IssueType::Invalid,
        "Patient.active",
    );
    has(
        p("multipleBirthInteger", json!(2147483648u64)),
        IssueType::Invalid,
        "Patient.multipleBirth.ofType(integer)",
    );
    has(
        p("multipleBirthInteger", json!(1.5)),
        IssueType::Invalid,
        "Patient.multipleBirth.ofType(integer)",
    );
    has(p("id", json!("bad-id_1")), IssueType::Invalid, "Patient.id");
    has(
        p("id", json!("x".repeat(65))),
        IssueType::Invalid,
        "Patient.id",
    );
    has(
        p("deceasedDateTime", json!("2020-01-01T10:00:00")),
        IssueType::Invalid,
        "Patient.deceased.ofType(dateTime)",
    );
    has(
        json!({"resourceType": "Media", "status": "completed", "content": {"data": "%%%2@()()"}}),
        IssueType::Invalid,
        "Media.content.data",
    );
    has(
        json!({"resourceType": "Patient", "photo": [{"size": -1}]}),
        IssueType::Invalid,
        "Patient.photo[0].size",
    );
    // Non-ASCII text and non-breaking spaces are fine in strings (XML Schema's \s is ASCII).
    assert!(is_valid(&check(p(
        "name",
        json!([{"text": "Zoë\u{a0}Ng"}])
    ))));
}

#[test]
fn primitive_extensions() {
    let ok = json!({"resourceType": "Patient", "_birthDate": {"extension": [
        {"url": "http://example.org/x", "valueString": "y"}]},
        "name": [{"given": ["A", null], "_given": [null, {"extension": [{"url": "http://x.org/e", "valueCode": "c"}]}]}]});
    let out = check(ok);
    assert!(is_valid(&out), "{out:?}");
    has(
        json!({"resourceType": "Patient", "_birthDate": {"value": "x"}}),
        IssueType::Structure,
        "Patient.birthDate",
    );
    has(
        json!({"resourceType": "Patient", "name": [{"given": ["A", null]}]}),
        IssueType::Structure,
        "Patient.name[0].given[1]",
    );
    has(
        json!({"resourceType": "Patient", "_name": {}}),
        IssueType::Structure,
        "Patient.name",
    );
}

#[test]
fn nested_resources() {
    let b = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "pat1", "gender": "invalid"}}]});
    has(
        b,
        IssueType::CodeInvalid,
        "Bundle.entry[0].resource/*Patient/pat1*/.gender",
    );
    let c = json!({"resourceType": "Condition", "subject": {"reference": "#p"},
        "contained": [{"resourceType": "Patient", "id": "p", "birthDate": "x"}]});
    has(
        c,
        IssueType::Invalid,
        "Condition.contained[0]/*Patient/p*/.birthDate",
    );
}

#[test]
fn required_bindings() {
    has(
        json!({"resourceType": "Patient", "gender": "asdf"}),
        IssueType::CodeInvalid,
        "Patient.gender",
    );
    // Coding and CodeableConcept: Patient.communication.language is preferred, so no error there;
    // Observation.status is a required code; Quantity.comparator a required code.
    has(
        json!({"resourceType": "Observation", "status": "done", "code": {"text": "x"}}),
        IssueType::CodeInvalid,
        "Observation.status",
    );
    has(
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "valueQuantity": {"value": 1, "comparator": "~"}}),
        IssueType::CodeInvalid,
        "Observation.value.ofType(Quantity).comparator",
    );
    // A required CodeableConcept: any one coding in the value set passes.
    let ok = json!({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
        "clinicalStatus": {"coding": [{"system": "http://example.org", "code": "x"},
            {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]}});
    assert!(is_valid(&check(ok)));
    has(
        json!({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "gone"}]}}),
        IssueType::CodeInvalid,
        "AllergyIntolerance.clinicalStatus",
    );
    // Unclosed expansions (mime types) decide nothing.
    assert!(is_valid(&check(
        json!({"resourceType": "Media", "status": "completed",
        "content": {"contentType": "application/x-anything"}})
    )));
}

#[test]
fn extensions() {
    has(
        json!({"resourceType": "Patient", "extension": [{"url": "nope", "valueString": "x"}]}),
        IssueType::Invalid,
        "Patient.extension[0]",
    );
    has(
        json!({"resourceType": "Patient", "extension": [{"valueString": "x"}]}),
        IssueType::Required,
        "Patient.extension[0]",
    );
    // Nested extensions name themselves with relative URLs.
    let race = json!({"resourceType": "Patient", "extension": [{"url": "http://x.org/race",
        "extension": [{"url": "text", "valueString": "x"}]}]});
    assert!(is_valid(&check(race)));
    has(
        json!({"resourceType": "Patient", "extension": [{"url": "http://x.org/e"}]}),
        IssueType::Invariant,
        "Patient.extension[0]",
    );
    has(
        json!({"resourceType": "Patient", "extension": [{"url": "http://x.org/e", "valueAge": {"value": "1"}}]}),
        IssueType::Invalid,
        "Patient.extension[0].value.ofType(Age).value",
    );
}

#[test]
fn narrative() {
    let t =
        |div: &str| json!({"resourceType": "Patient", "text": {"status": "generated", "div": div}});
    assert!(is_valid(&check(t(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>a &amp; b</p></div>"
    ))));
    has(
        t("<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>x</script></div>"),
        IssueType::Invalid,
        "Patient.text.div",
    );
    has(
        t("<div xmlns=\"http://www.w3.org/1999/xhtml\">&reg;</div>"),
        IssueType::Invalid,
        "Patient.text.div",
    );
    has(t("<p>x</p>"), IssueType::Invalid, "Patient.text.div");
    has(
        t("<div xmlns=\"http://www.w3.org/1999/xhtml\">\n  </div>"),
        IssueType::Invalid,
        "Patient.text.div",
    );
    assert!(is_valid(&check(t(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><img src=\"#a\"/></div>"
    ))));
}

#[test]
fn attachment_size_and_bundle_full_url() {
    // HL7 validator cases attachment-with-wrong-size and bundle-duplicate-id.
    let media = |size: u64| {
        json!({"resourceType": "Media", "status": "completed",
        "content": {"contentType": "text/plain", "data": "aGVscCBpJ20gYSBidWc=", "size": size}})
    };
    assert!(is_valid(&check(media(14))));
    has(media(100), IssueType::Structure, "Media.content");
    has(
        json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "Patient/1", "resource": {"resourceType": "Patient", "id": "1"}}]}),
        IssueType::Invalid,
        "Bundle.entry[0]",
    );
    assert!(is_valid(&check(
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:2aaf815f-3ebe-4a03-9b87-05d0700313b2",
         "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}]})
    )));
}

#[test]
fn invariants_report_key_human_and_location() {
    // HL7 validator case risk-assessment-probability-range: ras-2 on the prediction.
    let out = check(json!({"resourceType": "RiskAssessment", "status": "final",
        "subject": {"reference": "Patient/1"}, "prediction": [{"probabilityDecimal": 120}]}));
    let inv: Vec<_> = out
        .issues
        .iter()
        .filter(|i| i.code == IssueType::Invariant)
        .collect();
    assert_eq!(inv.len(), 1, "{out:?}");
    assert_eq!(inv[0].expression, vec!["RiskAssessment.prediction[0]"]);
    assert!(inv[0].diagnostics.starts_with("ras-2: "), "{inv:?}");
    // A data type's invariant (per-1) at the element holding it.
    has(
        json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
               "period": {"start": "2020-01-02", "end": "2020-01-01"}}),
        IssueType::Invariant,
        "Encounter.period",
    );
    // A backbone element's invariant (pat-1).
    has(
        json!({"resourceType": "Patient", "contact": [{"relationship": [{"text": "x"}]}]}),
        IssueType::Invariant,
        "Patient.contact[0]",
    );
}

#[test]
fn invariants_see_the_right_resources() {
    // ref-1 and dom-3: a contained resource refers to a sibling through the container.
    let obs = |subject: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "contained": [{"resourceType": "Patient", "id": "p1"},
                          {"resourceType": "Group", "id": "g", "type": "person", "actual": true,
                           "member": [{"entity": {"reference": "#p1"}}]}],
            "subject": {"reference": subject}})
    };
    assert!(is_valid(&check(obs("#g"))), "{:?}", check(obs("#g")));
    has(obs("#nope"), IssueType::Invariant, "Observation.subject");
    // The same Observation as a Bundle entry: it is its own %resource and %rootResource.
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:2aaf815f-3ebe-4a03-9b87-05d0700313b2", "resource": obs("#g")}]});
    assert!(is_valid(&check(bundle.clone())), "{:?}", check(bundle));
}

#[test]
fn best_practice_invariants_only_warn_and_only_when_asked() {
    let p = json!({"resourceType": "Patient"});
    assert!(check(p.clone()).issues.is_empty());
    let out =
        Validator::r4().validate_with(&p, &super::ValidateOptions::default().best_practice(true));
    assert!(is_valid(&out));
    assert!(
        out.issues
            .iter()
            .any(|i| i.diagnostics.starts_with("dom-6: ")),
        "{out:?}"
    );
}

#[test]
fn invariant_engine_workarounds() {
    // R4 example TestScript-testscript-example-history: `response.count()` in tst-5 must not count
    // `responseCode` (the engine reads any `response<Upper>` property as a choice form).
    let ts = |assert: Value| {
        json!({"resourceType": "TestScript", "url": "http://x.org/t", "name": "t", "status": "draft",
               "setup": {"action": [{"assert": assert}]}})
    };
    assert!(is_valid(&check(ts(
        json!({"direction": "response", "operator": "in",
        "responseCode": "200,204", "warningOnly": false})
    ))));
    has(
        ts(json!({"response": "okay", "responseCode": "200", "warningOnly": false})),
        IssueType::Invariant,
        "TestScript.setup.action[0].assert",
    );
    // R4 example Questionnaire-bb: que-7 with a boolean answer (native: the engine's `is Boolean`
    // is false for a FHIR boolean).
    let q = |answer: Value| {
        let mut ew = json!({"question": "a", "operator": "exists"});
        ew.as_object_mut()
            .unwrap()
            .extend(answer.as_object().unwrap().clone());
        json!({"resourceType": "Questionnaire", "status": "draft",
               "item": [{"linkId": "a", "type": "boolean"},
                        {"linkId": "b", "type": "string", "enableWhen": [ew]}]})
    };
    assert!(is_valid(&check(q(json!({"answerBoolean": true})))));
    has(
        q(json!({"answerString": "x"})),
        IssueType::Invariant,
        "Questionnaire.item[1].enableWhen[0]",
    );
}
