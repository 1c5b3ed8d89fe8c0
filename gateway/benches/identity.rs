//! Benchmarks of per-request identity: a bearer token verified from scratch for each accepted
//! algorithm, the same token again from the verified-token cache, and SMART scope checks.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark set-up on known input

use std::hint::black_box;
use std::path::PathBuf;

use anchorgate::identity::keys::IssuerKey;
use anchorgate::identity::scopes::{resource_matches, Permission, ScopeDecision, Scopes};
use anchorgate::identity::{Authenticator, IdentityConfig, IssuerConfig, ReplayMode, SigAlg};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::FutureExt;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NOW: u64 = 1_750_000_000;
const AUD: &str = "https://gw.test/fhir";
const RSA_PEM: &str = include_str!("../../tests/fixtures/identity/test-only-rsa-2048.pem");

/// An authenticator trusting one key, and a token it signed (the scenario principal dr-a).
fn setup(alg: SigAlg, token_cache: usize) -> (Authenticator, http::HeaderMap) {
    let key = match alg {
        SigAlg::RS256 | SigAlg::RS384 => {
            IssuerKey::from_pem(RSA_PEM.as_bytes(), Some(alg)).unwrap()
        }
        _ => IssuerKey::generate(alg).unwrap().0,
    };
    let dir =
        std::env::temp_dir().join(format!("anchorgate-bench-identity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join(format!("{}.json", alg.name()));
    std::fs::write(&jwks, key.jwks("k1").to_string()).unwrap();
    let cfg = IdentityConfig {
        partners_file: Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/partners.toml"),
        ),
        token_cache_capacity: token_cache,
        issuers: vec![IssuerConfig {
            issuer: "https://idp.test".into(),
            jwks_file: Some(jwks),
            jwks_url: None,
            refresh_secs: 300,
            replay: ReplayMode::Reusable,
            require_jti: false,
        }],
        ..IdentityConfig::default()
    };
    let a = Authenticator::new(&cfg, Some(AUD)).unwrap();
    let token = key
        .sign(
            "k1",
            &json!({
                "iss": "https://idp.test", "aud": AUD, "sub": "Practitioner/prac-a",
                "fhirUser": "Practitioner/prac-a", "client_id": "ehr-h1", "scope": "openid user/*.rs",
                "iat": NOW, "exp": NOW + 3600, "jti": "bench-1",
                "extensions": {"hl7-b2b": {"organization_id": "Organization/org-h1", "purpose_of_use": ["TREAT"]}}
            }),
        )
        .unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers.insert("x-purpose-of-use", "TREAT".parse().unwrap());
    (a, headers)
}

fn authenticate(c: &mut Criterion) {
    let mut g = c.benchmark_group("identity");
    g.throughput(Throughput::Elements(1));
    // File-backed keys and the in-memory replay store never wait, so the future completes at once.
    for alg in [SigAlg::ES256, SigAlg::ES384, SigAlg::RS256, SigAlg::EdDSA] {
        let (a, h) = setup(alg, 0);
        g.bench_function(format!("authenticate_verify_{}", alg.name()), |b| {
            b.iter(|| {
                a.authenticate(black_box(&h), NOW)
                    .now_or_never()
                    .unwrap()
                    .unwrap()
            })
        });
    }
    let (a, h) = setup(SigAlg::ES256, 10_000);
    g.bench_function("authenticate_cached_ES256", |b| {
        b.iter(|| {
            a.authenticate(black_box(&h), NOW)
                .now_or_never()
                .unwrap()
                .unwrap()
        })
    });
    let scope = "openid launch/patient user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory user/Patient.rs";
    g.bench_function("scopes_parse", |b| {
        b.iter(|| Scopes::parse(black_box(scope)))
    });
    let scopes = Scopes::parse(scope);
    let obs = json!({"resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]});
    g.bench_function("scope_check_and_granular_match", |b| {
        b.iter(|| {
            let d = scopes.check(black_box("Observation"), Permission::Read);
            let ScopeDecision::Granted { restrictions } = &d else {
                unreachable!()
            };
            resource_matches(&restrictions[0], black_box(&obs))
        })
    });
    g.finish();
}

criterion_group!(benches, authenticate);
criterion_main!(benches);
