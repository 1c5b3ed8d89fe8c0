//! Micro-benchmark of one consent decision (DESIGN.md §9 target: under 20 µs): a patient with 5 active
//! consents of 3 provision levels, the request's pre-decision (consents pruned by the request facts,
//! Cedar organisation policies by partial evaluation) plus the admission of one resource (its consent
//! branch and a concrete Cedar judgement). Also the parts on their own, and a 50-entry search filter.
#![allow(clippy::unwrap_used)] // benchmark set-up on literal input

use std::hint::black_box;
use std::sync::Arc;

use anchorgate::policy::{
    ActionKind, ConsentModel, DefaultPolicy, OrgPolicies, Outcome, PolicyEngine, RequestFacts,
    ResourceFacts,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};

const AR: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

fn consent(id: &str, provision: Value) -> Arc<ConsentModel> {
    let c = json!({
        "resourceType": "Consent", "id": id, "status": "active", "meta": {"versionId": "1"},
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1"}, "dateTime": "2024-01-01",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": provision
    });
    Arc::new(ConsentModel::compile(&c).unwrap())
}

fn actor(r: &str) -> Value {
    json!([{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"reference": r}}])
}

/// Five consents, each three levels deep, mixing every kind of condition; together they leave the
/// request conditional, so the resource is judged for real.
fn consents() -> Vec<Arc<ConsentModel>> {
    let purposes = json!([{"system": AR, "code": "TREAT"}, {"system": AR, "code": "ETREAT"}]);
    vec![
        consent(
            "c1",
            json!({"type": "permit", "purpose": purposes, "period": {"start": "2024-01-01"}, "provision": [
            {"type": "deny", "securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}], "provision": [
                {"type": "permit", "actor": actor("Organization/org-h1"), "purpose": [{"system": AR, "code": "ETREAT"}]}]},
            {"type": "deny", "actor": actor("Organization/org-h2"), "provision": [
                {"type": "permit", "purpose": [{"system": AR, "code": "ETREAT"}]}]}]}),
        ),
        consent(
            "c2",
            json!({"type": "permit", "purpose": [{"system": AR, "code": "TREAT"}], "provision": [
            {"type": "deny", "code": [{"coding": [{"system": "http://loinc.org", "code": "11331-6"}]}], "provision": [
                {"type": "permit", "dataPeriod": {"start": "2024-01-01"}}]}]}),
        ),
        consent(
            "c3",
            json!({"type": "permit", "actor": actor("Organization/org-h1"), "provision": [
            {"type": "deny", "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "DocumentReference"}], "provision": [
                {"type": "permit", "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}],
                 "dataPeriod": {"start": "2023-01-01", "end": "2023-12-31"}}]}]}),
        ),
        consent(
            "c4",
            json!({"type": "permit", "purpose": [{"system": AR, "code": "HRESCH"}], "actor": actor("Organization/org-research"), "provision": [
            {"type": "deny", "data": [{"meaning": "related", "reference": {"reference": "Encounter/e9"}}], "provision": [
                {"type": "permit", "securityLabel": [{"code": "N"}]}]}]}),
        ),
        consent(
            "c5",
            json!({"type": "permit", "period": {"start": "2024-01-01", "end": "2029-12-31"}, "provision": [
            {"type": "deny", "dataPeriod": {"end": "2015-12-31"}, "provision": [
                {"type": "permit", "code": [{"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}]}]}]}),
        ),
    ]
}

fn facts() -> RequestFacts {
    RequestFacts {
        principal: "Practitioner/prac-a".into(),
        fhir_user: Some("Practitioner/prac-a".into()),
        organization: Some("Organization/org-h1".into()),
        groups: vec!["Group/grp-btg".into()],
        purpose: Some("TREAT".into()),
        action: ActionKind::Read,
        now: 1_749_988_800,
        country: Some("GB".into()),
    }
}

fn observation(i: usize) -> Value {
    let label = if i.is_multiple_of(5) { "R" } else { "N" };
    json!({"resourceType": "Observation", "id": format!("obs-{i}"), "status": "final",
        "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": label}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "performer": [{"reference": "Practitioner/prac-x"}],
        "effectiveDateTime": "2022-03-01T10:00:00Z", "valueQuantity": {"value": 72, "unit": "/min"}})
}

fn bench(c: &mut Criterion) {
    let engine = PolicyEngine::new(OrgPolicies::shipped().unwrap(), DefaultPolicy::Deny);
    let consents = consents();
    let facts = facts();
    let one = observation(1);
    assert_eq!(
        engine.evaluate(&facts, &consents).decision().outcome,
        Outcome::PermitWithFilter
    );
    let mut g = c.benchmark_group("decision");
    // Warm: this request identity (principal, organisation, Groups, country, purpose) was seen before,
    // so Cedar's verdicts come from the cache; the consents are evaluated afresh every time.
    g.bench_function("full_5_consents_3_levels", |b| {
        b.iter(|| {
            let eval = engine.evaluate(black_box(&facts), black_box(&consents));
            let res = ResourceFacts::new(black_box(&one)).unwrap();
            black_box(eval.admit(&res))
        })
    });
    // Cold: a new identity every time, so Cedar's entities are built and every policy evaluated.
    let mut n = 0u64;
    g.bench_function("full_5_consents_3_levels_cold", |b| {
        b.iter_batched(
            || {
                n += 1;
                let mut f = facts.clone();
                f.principal = format!("Practitioner/p{n}");
                f.fhir_user = Some(f.principal.clone());
                f
            },
            |f| {
                let eval = engine.evaluate(&f, black_box(&consents));
                let res = ResourceFacts::new(black_box(&one)).unwrap();
                black_box(eval.admit(&res))
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("pre_decision_only", |b| {
        b.iter(|| black_box(engine.evaluate(black_box(&facts), black_box(&consents))))
    });
    let eval = engine.evaluate(&facts, &consents);
    eval.admit(&ResourceFacts::new(&one).unwrap());
    g.bench_function("admit_only", |b| {
        b.iter(|| black_box(eval.admit(&ResourceFacts::new(black_box(&one)).unwrap())))
    });
    let plain = vec![consent(
        "plain",
        json!({"type": "permit", "purpose": [{"system": AR, "code": "TREAT"}]}),
    )];
    g.bench_function("full_constant_permit", |b| {
        b.iter(|| {
            let eval = engine.evaluate(black_box(&facts), black_box(&plain));
            black_box(eval.admit(&ResourceFacts::new(black_box(&one)).unwrap()))
        })
    });
    let mut fr = facts.clone();
    fr.country = Some("FR".into());
    fr.organization = Some("Organization/org-fr".into());
    let named = vec![consent(
        "fr",
        json!({"type": "permit", "actor": actor("Organization/org-fr")}),
    )];
    g.bench_function("full_cross_border", |b| {
        b.iter(|| {
            let eval = engine.evaluate(black_box(&fr), black_box(&named));
            black_box(eval.admit(&ResourceFacts::new(black_box(&one)).unwrap()))
        })
    });
    g.finish();

    let entries: Vec<Value> = (0..50).map(observation).collect();
    let mut g = c.benchmark_group("filter_search_50");
    g.throughput(Throughput::Elements(50));
    g.bench_function("evaluate_and_admit_each", |b| {
        b.iter(|| {
            let eval = engine.evaluate(black_box(&facts), black_box(&consents));
            let mut d = eval.decision().clone();
            for e in &entries {
                d.record(&eval.admit(&ResourceFacts::new(e).unwrap()));
            }
            black_box(d)
        })
    });
    g.finish();

    let raw = json!({
        "resourceType": "Consent", "id": "c1", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "patient": {"reference": "Patient/p1"},
        "provision": {"type": "permit", "purpose": [{"system": AR, "code": "TREAT"}], "provision": [
            {"type": "deny", "securityLabel": [{"code": "R"}], "provision": [{"type": "permit", "actor": actor("Organization/org-h1")}]}]}
    });
    c.bench_function("consent_compile_3_levels", |b| {
        b.iter(|| black_box(ConsentModel::compile(black_box(&raw)).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
