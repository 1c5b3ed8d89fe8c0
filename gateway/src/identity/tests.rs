#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use super::keys::{mint, IssuerKey, KeyError};
use super::*;

const NOW: u64 = 1_750_000_000;
const AUD: &str = "https://gw.test/fhir";
const ISS: &str = "https://idp.test";
/// TEST-ONLY RSA key (tests/fixtures/identity/README.md).
const RSA_PEM: &str = include_str!("../../../tests/fixtures/identity/test-only-rsa-2048.pem");

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("anchorgate-identity-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn partners_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/partners.toml")
}

/// A test issuer: its key, kid and JWKS file.
struct TestIssuer {
    key: IssuerKey,
    kid: String,
}

impl TestIssuer {
    fn new(alg: SigAlg) -> Self {
        let key = match alg {
            SigAlg::RS256 | SigAlg::RS384 => {
                IssuerKey::from_pem(RSA_PEM.as_bytes(), Some(alg)).unwrap()
            }
            _ => IssuerKey::generate(alg).unwrap().0,
        };
        let kid = format!("{}-{}", alg.name(), key.thumbprint());
        Self { key, kid }
    }

    fn config(&self, iss: &str, dir: &std::path::Path) -> IssuerConfig {
        let file = dir.join(format!("{}.jwks.json", self.kid));
        std::fs::write(&file, self.key.jwks(&self.kid).to_string()).unwrap();
        IssuerConfig {
            issuer: iss.into(),
            jwks_file: Some(file),
            jwks_url: None,
            refresh_secs: 300,
            replay: ReplayMode::Reusable,
            require_jti: false,
        }
    }

    fn sign(&self, claims: &Value) -> String {
        self.key.sign(&self.kid, claims).unwrap()
    }
}

fn base_claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "Practitioner/prac-a",
        "fhirUser": "Practitioner/prac-a",
        "client_id": "ehr-h1",
        "scope": "openid user/*.rs",
        "iat": NOW - 10,
        "exp": NOW + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
        "extensions": {"hl7-b2b": {
            "version": "1",
            "organization_id": "Organization/org-h1",
            "purpose_of_use": ["TREAT"]
        }}
    })
}

fn config(issuers: Vec<IssuerConfig>) -> IdentityConfig {
    IdentityConfig {
        issuers,
        partners_file: Some(partners_file()),
        ..IdentityConfig::default()
    }
}

/// An authenticator trusting one ES256 issuer.
fn setup() -> (Authenticator, TestIssuer) {
    setup_with(SigAlg::ES256, |_| {})
}

fn setup_with(alg: SigAlg, tweak: impl FnOnce(&mut IdentityConfig)) -> (Authenticator, TestIssuer) {
    let issuer = TestIssuer::new(alg);
    let mut cfg = config(vec![issuer.config(ISS, &temp_dir())]);
    tweak(&mut cfg);
    (Authenticator::new(&cfg, Some(AUD)).unwrap(), issuer)
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn with_purpose(mut h: HeaderMap, purpose: &str) -> HeaderMap {
    h.insert(PURPOSE_HEADER, HeaderValue::from_str(purpose).unwrap());
    h
}

async fn auth(a: &Authenticator, token: &str) -> Result<Principal, AuthError> {
    a.authenticate(&bearer(token), NOW).await
}

/// The refusal of `token`, checked never to echo it.
async fn refused(a: &Authenticator, token: &str) -> AuthError {
    let e = auth(a, token).await.expect_err("the token must be refused");
    let msg = e.to_string();
    let challenge = e
        .www_authenticate()
        .map(|h| h.to_str().unwrap().to_owned())
        .unwrap_or_default();
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!msg.contains(part), "message echoes the token: {msg}");
        assert!(!challenge.contains(part), "challenge echoes the token");
    }
    e
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn every_algorithm_signs_and_verifies() {
    let dir = temp_dir();
    let algs = [
        SigAlg::ES256,
        SigAlg::ES384,
        SigAlg::RS256,
        SigAlg::RS384,
        SigAlg::EdDSA,
    ];
    let issuers: Vec<TestIssuer> = algs.iter().map(|a| TestIssuer::new(*a)).collect();
    let cfgs = issuers
        .iter()
        .map(|i| i.config(&format!("https://idp-{}.test", i.kid), &dir))
        .collect();
    let a = Authenticator::new(&config(cfgs), Some(AUD)).unwrap();
    for i in &issuers {
        let mut c = base_claims();
        c["iss"] = format!("https://idp-{}.test", i.kid).into();
        let p = auth(&a, &i.sign(&c))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", i.kid));
        assert_eq!(p.issuer.as_deref(), Some(c["iss"].as_str().unwrap()));
        // Without a kid, every key fitting the alg is tried.
        c["jti"] = uuid::Uuid::new_v4().to_string().into();
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": i.key.alg().name(), "typ": "JWT"})),
            b64(&c)
        );
        let kidless = format!("{input}.{}", i.key.sign_raw(input.as_bytes()).unwrap());
        assert!(auth(&a, &kidless).await.is_ok(), "{} without kid", i.kid);
    }
}

#[tokio::test]
async fn principal_reads_the_claims_and_the_registry() {
    let (a, i) = setup();
    let mut c = base_claims();
    c["patient"] = "pat-p".into();
    c["scope"] = "launch/patient openid user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory".into();
    c["extensions"]["hl7-b2b"]["purpose_of_use"] = json!([
        "urn:oid:2.16.840.1.113883.5.8#TREAT",
        "http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT",
        "TREAT",
        "http://other.example/purposes|X"
    ]);
    let p = auth(&a, &i.sign(&c)).await.unwrap();
    assert!(!p.anonymous);
    assert_eq!(p.subject.as_deref(), Some("Practitioner/prac-a"));
    assert_eq!(p.fhir_user.as_deref(), Some("Practitioner/prac-a"));
    assert_eq!(p.client_id.as_deref(), Some("ehr-h1"));
    assert_eq!(p.launch_patient.as_deref(), Some("pat-p"));
    assert_eq!(p.organization.as_deref(), Some("Organization/org-h1"));
    assert_eq!(p.organization_display.as_deref(), Some("Hospital One"));
    assert_eq!(p.country.as_deref(), Some("GB"));
    assert_eq!(p.purposes, ["TREAT", "ETREAT"]);
    assert_eq!(p.purpose, None, "two purposes and no header: none applies");
    assert_eq!(p.jti.as_deref(), c["jti"].as_str());
    assert_eq!(p.expires_at, Some(NOW + 300));
    assert!(p.scopes.has("launch/patient"));
    assert!(p.scopes.check("Observation", Permission::Read).is_granted());
    assert!(p.scopes.check("Patient", Permission::Read).is_denied());
    assert_eq!(p.actor(), Some("Practitioner/prac-a"));
    // Debug shows no token.
    let token = i.sign(&c);
    assert!(!format!("{p:?}").contains(token.split('.').nth(2).unwrap()));
}

#[tokio::test]
async fn one_token_purpose_applies_without_a_header() {
    let (a, i) = setup();
    let p = auth(&a, &i.sign(&base_claims())).await.unwrap();
    assert_eq!(p.purposes, ["TREAT"]);
    assert_eq!(p.purpose.as_deref(), Some("TREAT"));
    // A single bare string is accepted too.
    let mut c = base_claims();
    c["extensions"]["hl7-b2b"]["purpose_of_use"] = "ETREAT".into();
    assert_eq!(
        auth(&a, &i.sign(&c)).await.unwrap().purpose.as_deref(),
        Some("ETREAT")
    );
}

#[tokio::test]
async fn purpose_header_may_only_narrow() {
    let (a, i) = setup();
    let mut c = base_claims();
    c["extensions"]["hl7-b2b"]["purpose_of_use"] = json!(["TREAT", "ETREAT"]);
    let token = i.sign(&c);
    for (header, want) in [
        ("ETREAT", "ETREAT"),
        ("urn:oid:2.16.840.1.113883.5.8#TREAT", "TREAT"),
        (
            "http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT",
            "ETREAT",
        ),
    ] {
        let p = a
            .authenticate(&with_purpose(bearer(&token), header), NOW)
            .await
            .unwrap();
        assert_eq!(p.purpose.as_deref(), Some(want), "{header}");
        assert_eq!(p.purposes, ["TREAT", "ETREAT"]);
    }
    // Wider than the token: 403 naming what the token grants.
    let e = a
        .authenticate(&with_purpose(bearer(&token), "HRESCH"), NOW)
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);
    assert_eq!(
        e.to_string(),
        "purpose HRESCH in X-Purpose-Of-Use is not granted by the token (it grants TREAT, ETREAT)"
    );
    // Unreadable headers: 400.
    for bad in ["TREAT,ETREAT", "TREAT ETREAT", "urn:oid:1.2.3#TREAT", ""] {
        let e = a
            .authenticate(&with_purpose(bearer(&token), bad), NOW)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 400, "{bad:?}: {e}");
        assert!(matches!(e, AuthError::BadPurposeHeader(_)));
    }
    let mut h = with_purpose(bearer(&token), "TREAT");
    h.append(PURPOSE_HEADER, HeaderValue::from_static("ETREAT"));
    assert!(matches!(
        a.authenticate(&h, NOW).await,
        Err(AuthError::BadPurposeHeader(_))
    ));
}

#[tokio::test]
async fn registry_drops_purposes_and_places_the_organisation() {
    let (a, i) = setup();
    let mut c = base_claims();
    c["sub"] = "Practitioner/prac-r".into();
    c["extensions"]["hl7-b2b"]["organization_id"] = "Organization/org-research".into();
    c["extensions"]["hl7-b2b"]["purpose_of_use"] = json!(["TREAT", "HRESCH"]);
    let token = i.sign(&c);
    let p = auth(&a, &token).await.unwrap();
    assert_eq!(
        p.purposes,
        ["HRESCH"],
        "TREAT is not allowed for org-research"
    );
    assert_eq!(p.purpose.as_deref(), Some("HRESCH"));
    assert_eq!(
        p.organization_display.as_deref(),
        Some("Research Institute")
    );
    let e = a
        .authenticate(&with_purpose(bearer(&token), "TREAT"), NOW)
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);
    assert_eq!(
        e.to_string(),
        "purpose TREAT is granted by the token but not allowed for organisation \"Organization/org-research\" by the partner registry"
    );
    // The country is the registry's, whatever the token says.
    let mut c = base_claims();
    c["extensions"]["hl7-b2b"]["organization_id"] = "Organization/org-fr".into();
    c["country"] = "GB".into();
    let p = auth(&a, &i.sign(&c)).await.unwrap();
    assert_eq!(p.country.as_deref(), Some("FR"));
    // An organisation outside the registry is refused.
    c["extensions"]["hl7-b2b"]["organization_id"] = "Organization/org-unknown".into();
    c["jti"] = "other".into();
    let e = auth(&a, &i.sign(&c)).await.unwrap_err();
    assert_eq!(e.status(), 403);
    assert_eq!(
        e.to_string(),
        "organisation \"Organization/org-unknown\" is not in the partner registry"
    );
    // Without an organisation: no country, no purposes.
    let mut c = base_claims();
    c.as_object_mut().unwrap().remove("extensions");
    let p = auth(&a, &i.sign(&c)).await.unwrap();
    assert_eq!((p.country, p.purposes, p.purpose), (None, vec![], None));
}

#[tokio::test]
async fn time_window_with_leeway() {
    let (a, i) = setup();
    let at = |exp: i64, nbf: Option<i64>, iat: i64| {
        let mut c = base_claims();
        c["exp"] = (NOW as i64 + exp).into();
        c["iat"] = (NOW as i64 + iat).into();
        if let Some(n) = nbf {
            c["nbf"] = (NOW as i64 + n).into();
        }
        i.sign(&c)
    };
    assert!(
        auth(&a, &at(-29, None, -100)).await.is_ok(),
        "inside leeway"
    );
    let e = refused(&a, &at(-30, None, -100)).await;
    assert_eq!(
        e.to_string(),
        format!(
            "the bearer token is refused: it expired at {} (unix seconds), 30 s ago (leeway 30 s)",
            NOW - 30
        )
    );
    assert_eq!(e.status(), 401);
    assert!(
        auth(&a, &at(300, Some(30), 0)).await.is_ok(),
        "nbf inside leeway"
    );
    let e = refused(&a, &at(300, Some(31), 0)).await;
    assert_eq!(
        e,
        AuthError::InvalidToken(TokenProblem::NotYetValid {
            nbf: NOW + 31,
            wait: 31,
            leeway: 30
        })
    );
    assert!(e.to_string().contains("not valid before"));
    let e = refused(&a, &at(300, None, 31)).await;
    assert!(matches!(
        e,
        AuthError::InvalidToken(TokenProblem::IssuedInFuture { .. })
    ));
    let mut c = base_claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        refused(&a, &i.sign(&c)).await,
        AuthError::InvalidToken(TokenProblem::MissingExp)
    );
    c["exp"] = "tomorrow".into();
    assert!(matches!(
        refused(&a, &i.sign(&c)).await,
        AuthError::InvalidToken(TokenProblem::ClaimType { claim: "exp", .. })
    ));
    c["exp"] = json!(NOW as f64 + 10.5);
    assert!(
        auth(&a, &i.sign(&c)).await.is_ok(),
        "fractional NumericDate"
    );
}

#[tokio::test]
async fn audience_must_name_the_gateway() {
    let (a, i) = setup();
    let with_aud = |aud: Value| {
        let mut c = base_claims();
        c["aud"] = aud;
        c["jti"] = uuid::Uuid::new_v4().to_string().into();
        i.sign(&c)
    };
    assert!(auth(&a, &with_aud(json!(["https://other", AUD])))
        .await
        .is_ok());
    assert!(auth(&a, &with_aud(json!("https://gw.test/fhir/")))
        .await
        .is_ok());
    for bad in [
        json!("https://other.test/fhir"),
        json!(["https://gw.test"]),
        json!(null),
        json!(5),
    ] {
        let e = refused(&a, &with_aud(bad.clone())).await;
        assert_eq!(
            e.to_string(),
            "the bearer token is refused: its aud does not include this gateway's audience \"https://gw.test/fhir\"",
            "{bad}"
        );
    }
    let mut c = base_claims();
    c.as_object_mut().unwrap().remove("aud");
    assert!(matches!(
        refused(&a, &i.sign(&c)).await,
        AuthError::InvalidToken(TokenProblem::WrongAudience(_))
    ));
    // The configured audience wins over the public base.
    let (a, i) = setup_with(SigAlg::ES256, |c| c.audience = Some("urn:gw".into()));
    let mut c = base_claims();
    c["aud"] = "urn:gw".into();
    assert!(auth(&a, &i.sign(&c)).await.is_ok());
    assert!(auth(&a, &i.sign(&base_claims())).await.is_err());
}

#[tokio::test]
async fn issuer_must_be_configured() {
    let (a, i) = setup();
    let mut c = base_claims();
    c["iss"] = "https://evil.test".into();
    let e = refused(&a, &i.sign(&c)).await;
    assert_eq!(
        e.to_string(),
        "the bearer token is refused: its issuer \"https://evil.test\" is not trusted by this gateway"
    );
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        refused(&a, &i.sign(&c)).await,
        AuthError::InvalidToken(TokenProblem::MissingIssuer)
    );
    // A trusted issuer's name on a token signed by another key fails the signature.
    let other = TestIssuer::new(SigAlg::ES256);
    let forged = other.key.sign(&i.kid, &base_claims()).unwrap();
    assert!(matches!(
        refused(&a, &forged).await,
        AuthError::InvalidToken(TokenProblem::BadSignature(_))
    ));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let (a, _) = setup();
    for alg in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&base_claims())
        );
        let e = refused(&a, &token).await;
        assert_eq!(e, AuthError::InvalidToken(TokenProblem::AlgNone));
        assert_eq!(
            e.to_string(),
            "the bearer token is refused: its header says alg \"none\"; unsigned tokens are never accepted"
        );
        let challenge = e.www_authenticate().unwrap();
        assert!(challenge
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\""));
    }
}

#[tokio::test]
async fn hs256_with_the_public_key_as_secret_is_refused() {
    for alg in [SigAlg::RS256, SigAlg::ES256] {
        let (a, i) = setup_with(alg, |_| {});
        // The classic key-confusion attack: HMAC keyed with the published key.
        for secret in [
            i.key.jwks(&i.kid).to_string().into_bytes(),
            i.key.public_jwk(&i.kid).to_string().into_bytes(),
        ] {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some(i.kid.clone());
            let token = jsonwebtoken::encode(
                &header,
                &base_claims(),
                &jsonwebtoken::EncodingKey::from_secret(&secret),
            )
            .unwrap();
            let e = refused(&a, &token).await;
            assert_eq!(
                e,
                AuthError::InvalidToken(TokenProblem::Symmetric("HS256".into()))
            );
            assert!(e.to_string().contains("symmetric (HMAC)"));
        }
    }
}

#[tokio::test]
async fn tampered_tokens_fail_the_signature() {
    let (a, i) = setup();
    let token = i.sign(&base_claims());
    let parts: Vec<&str> = token.split('.').collect();
    // A flipped signature byte.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[5] ^= 1;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    let e = refused(&a, &bad_sig).await;
    assert_eq!(
        e.to_string(),
        format!(
            "the bearer token is refused: its signature does not verify with key {:?}",
            i.kid
        )
    );
    // Claims changed under the original signature (a scope escalation).
    let mut c = base_claims();
    c["scope"] = "system/*.cruds".into();
    let escalated = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
    assert!(matches!(
        refused(&a, &escalated).await,
        AuthError::InvalidToken(TokenProblem::BadSignature(_))
    ));
    // A signature that is not base64url.
    let junk = format!("{}.{}.@@@", parts[0], parts[1]);
    assert!(matches!(
        refused(&a, &junk).await,
        AuthError::InvalidToken(TokenProblem::BadSignature(_))
    ));
}

#[tokio::test]
async fn unknown_kid_and_mismatched_keys() {
    let (a, i) = setup();
    let token = i.key.sign("no-such-kid", &base_claims()).unwrap();
    let e = refused(&a, &token).await;
    assert_eq!(
        e.to_string(),
        "the bearer token is refused: its kid \"no-such-kid\" names no key of issuer \"https://idp.test\""
    );
    // An ES384 signature presented under the ES256 key's kid.
    let es384 = TestIssuer::new(SigAlg::ES384);
    let token = es384.key.sign(&i.kid, &base_claims()).unwrap();
    let e = refused(&a, &token).await;
    assert_eq!(
        e,
        AuthError::InvalidToken(TokenProblem::KeyMismatch {
            alg: "ES384",
            kid: i.kid.clone(),
            key: "an EC P-256 key",
            pinned: "ES256".into()
        })
    );
    // No kid, and no key for the alg.
    let header = json!({"alg": "EdDSA"});
    let input = format!("{}.{}", b64(&header), b64(&base_claims()));
    let ed = TestIssuer::new(SigAlg::EdDSA);
    let token = format!("{input}.{}", ed.key.sign_raw(input.as_bytes()).unwrap());
    assert_eq!(
        refused(&a, &token).await,
        AuthError::InvalidToken(TokenProblem::NoKeyForAlg {
            alg: "EdDSA",
            issuer: ISS.into()
        })
    );
}

#[tokio::test]
async fn rsa_keys_verify_both_rsa_algs_unless_pinned() {
    let (a, i) = setup_with(SigAlg::RS256, |_| {});
    let rs384 = IssuerKey::from_pem(RSA_PEM.as_bytes(), Some(SigAlg::RS384)).unwrap();
    // The JWKS pins RS256 (`alg` in the JWK), so an RS384 token under that kid is refused.
    let token = rs384.sign(&i.kid, &base_claims()).unwrap();
    assert!(matches!(
        refused(&a, &token).await,
        AuthError::InvalidToken(TokenProblem::KeyMismatch { .. })
    ));
}

#[tokio::test]
async fn replay_by_a_different_token_is_refused() {
    let (a, i) = setup();
    let c = base_claims();
    let token = i.sign(&c);
    assert!(auth(&a, &token).await.is_ok());
    assert!(
        auth(&a, &token).await.is_ok(),
        "a bearer token may be reused"
    );
    let mut c2 = c.clone();
    c2["scope"] = "user/*.cruds".into();
    let e = refused(&a, &i.sign(&c2)).await;
    assert_eq!(
        e.to_string(),
        "the bearer token is refused: its jti was already used by a different token of the same issuer"
    );
    // ECDSA signs with a random nonce: the same claims signed twice make a different token too.
    assert!(auth(&a, &i.sign(&c)).await.is_err());
    // Once the first token has expired (leeway included) its jti is forgotten.
    let later = NOW + 300 + 30;
    let mut c3 = c.clone();
    c3["exp"] = (later + 300).into();
    c3["iat"] = later.into();
    assert!(a.authenticate(&bearer(&i.sign(&c3)), later).await.is_ok());
}

#[tokio::test]
async fn single_use_issuers_and_required_jti() {
    let (a, i) = setup_with(SigAlg::EdDSA, |c| {
        c.issuers[0].replay = ReplayMode::SingleUse;
        c.issuers[0].require_jti = true;
    });
    // Ed25519 is deterministic: the same claims give the same token.
    let token = i.sign(&base_claims());
    assert!(auth(&a, &token).await.is_ok());
    let e = refused(&a, &token).await;
    assert_eq!(
        e.to_string(),
        "the bearer token is refused: its jti was already used by an earlier request, and this issuer's tokens are single-use"
    );
    let mut c = base_claims();
    c.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        refused(&a, &i.sign(&c)).await,
        AuthError::InvalidToken(TokenProblem::MissingJti(ISS.into()))
    );
    // Without require_jti a token without jti passes, and can be reused.
    let (a, i) = setup();
    let t = i.sign(&c);
    assert!(auth(&a, &t).await.is_ok() && auth(&a, &t).await.is_ok());
}

#[tokio::test]
async fn verified_tokens_are_cached_but_rechecked_per_request() {
    let (a, i) = setup();
    let mut c = base_claims();
    c["extensions"]["hl7-b2b"]["purpose_of_use"] = json!(["TREAT", "ETREAT"]);
    let token = i.sign(&c);
    assert_eq!(auth(&a, &token).await.unwrap().purpose, None);
    assert_eq!(a.verified.len(), 1);
    // From the cache: the purpose header is still read, and narrows.
    let p = a
        .authenticate(&with_purpose(bearer(&token), "ETREAT"), NOW + 1)
        .await
        .unwrap();
    assert_eq!(p.purpose.as_deref(), Some("ETREAT"));
    assert!(a
        .authenticate(&with_purpose(bearer(&token), "HRESCH"), NOW + 1)
        .await
        .is_err());
    // And the time window.
    let e = a
        .authenticate(&bearer(&token), NOW + 400)
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        AuthError::InvalidToken(TokenProblem::Expired { .. })
    ));
    // Refused tokens are not cached; with capacity 0 nothing is.
    let _ = refused(&a, &i.key.sign("unknown", &base_claims()).unwrap()).await;
    assert_eq!(a.verified.len(), 1);
    let (a, i) = setup_with(SigAlg::ES256, |c| c.token_cache_capacity = 0);
    let t = i.sign(&base_claims());
    assert!(auth(&a, &t).await.is_ok() && auth(&a, &t).await.is_ok());
    assert_eq!(a.verified.len(), 0);
    // A bounded cache starts over rather than growing.
    let (a, i) = setup_with(SigAlg::ES256, |c| c.token_cache_capacity = 2);
    for _ in 0..5 {
        assert!(auth(&a, &i.sign(&base_claims())).await.is_ok());
        assert!(a.verified.len() <= 2);
    }
}

#[test]
fn authenticate_can_run_on_any_worker() {
    fn send<T: Send>(_: &T) {}
    fn shared<T: Send + Sync>() {}
    shared::<Authenticator>();
    let (a, _) = setup();
    let h = HeaderMap::new();
    send(&a.authenticate(&h, NOW));
}

#[tokio::test]
async fn a_full_replay_cache_refuses_with_503() {
    let (a, i) = setup_with(SigAlg::ES256, |c| c.replay_cache_capacity = 1);
    assert!(auth(&a, &i.sign(&base_claims())).await.is_ok());
    let e = refused(&a, &i.sign(&base_claims())).await;
    assert_eq!(e.status(), 503);
}

#[tokio::test]
async fn a_failed_purpose_check_does_not_consume_a_single_use_token() {
    let (a, i) = setup_with(SigAlg::ES256, |c| {
        c.issuers[0].replay = ReplayMode::SingleUse
    });
    let token = i.sign(&base_claims());
    let e = a
        .authenticate(&with_purpose(bearer(&token), "HRESCH"), NOW)
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);
    assert!(auth(&a, &token).await.is_ok());
}

#[tokio::test]
async fn missing_and_malformed_authorization() {
    let (a, i) = setup();
    let e = a.authenticate(&HeaderMap::new(), NOW).await.unwrap_err();
    assert_eq!(e, AuthError::MissingToken);
    assert_eq!(e.status(), 401);
    assert_eq!(e.www_authenticate().unwrap(), "Bearer realm=\"anchorgate\"");
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    let e = a.authenticate(&h, NOW).await.unwrap_err();
    assert_eq!(e, AuthError::NotBearer);
    assert_eq!(e.www_authenticate().unwrap(), "Bearer realm=\"anchorgate\"");
    for value in ["Bearer", "Bearer    ", "bearer "] {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_static(value));
        assert_eq!(
            a.authenticate(&h, NOW).await.unwrap_err(),
            AuthError::InvalidToken(TokenProblem::Malformed("the Bearer credentials are empty")),
            "{value:?}"
        );
    }
    let token = i.sign(&base_claims());
    // The scheme is case-insensitive.
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("bEaReR {token}")).unwrap(),
    );
    assert!(a.authenticate(&h, NOW).await.is_ok());
    let mut h = bearer(&token);
    h.append(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer x"),
    );
    assert!(matches!(
        a.authenticate(&h, NOW).await.unwrap_err(),
        AuthError::InvalidToken(TokenProblem::Malformed(_))
    ));
    let header = b64(&json!({"alg": "ES256"}));
    let claims = b64(&base_claims());
    for (bad, why) in [
        ("abc".to_owned(), "three base64url parts"),
        (format!("{header}.{claims}"), "three base64url parts"),
        (format!("{header}.{claims}.a.b.c"), "three base64url parts"),
        (format!("!!.{claims}.sig"), "header is not base64url"),
        (
            format!("{}.{claims}.sig", b64(&json!("str"))),
            "header is not base64url",
        ),
        (
            format!("{header}.{}.sig", b64(&json!([1]))),
            "payload is not",
        ),
        (format!("{header}.{claims}."), "no signature"),
        (
            format!("{}.{claims}.sig", b64(&json!({"typ": "JWT"}))),
            "no alg",
        ),
    ] {
        let e = refused(&a, &bad).await;
        assert!(e.to_string().contains(why), "{bad}: {e}");
        assert_eq!(e.status(), 401);
    }
    let crit = format!(
        "{}.{claims}.sig",
        b64(&json!({"alg": "ES256", "crit": ["exp"], "exp": 1}))
    );
    assert_eq!(
        refused(&a, &crit).await,
        AuthError::InvalidToken(TokenProblem::Critical)
    );
    let dpop = format!(
        "{}.{claims}.sig",
        b64(&json!({"alg": "ES256", "typ": "dpop+jwt"}))
    );
    assert_eq!(
        refused(&a, &dpop).await,
        AuthError::InvalidToken(TokenProblem::WrongType("dpop+jwt".into()))
    );
    let ps = format!("{}.{claims}.sig", b64(&json!({"alg": "PS256"})));
    assert!(refused(&a, &ps)
        .await
        .to_string()
        .contains("\"PS256\" is not accepted"));
    let long = format!("{header}.{}.sig", "A".repeat(jws::MAX_TOKEN_BYTES));
    assert_eq!(
        refused(&a, &long).await,
        AuthError::InvalidToken(TokenProblem::TooLong(jws::MAX_TOKEN_BYTES))
    );
    let mut c = base_claims();
    c["scope"] = json!(["user/*.rs"]);
    assert!(refused(&a, &i.sign(&c))
        .await
        .to_string()
        .contains("scope claim must be a string"));
}

#[tokio::test]
async fn anonymous_access_is_explicit() {
    let (a, i) = setup_with(SigAlg::ES256, |c| c.anonymous = true);
    let p = a.authenticate(&HeaderMap::new(), NOW).await.unwrap();
    assert_eq!(p, Principal::anonymous());
    assert!(p.scopes.check("Patient", Permission::Read).is_denied());
    // A bad token is not downgraded to anonymous.
    let mut c = base_claims();
    c["exp"] = (NOW - 100).into();
    assert_eq!(refused(&a, &i.sign(&c)).await.status(), 401);
    let e = a
        .authenticate(&with_purpose(HeaderMap::new(), "TREAT"), NOW)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "purpose TREAT in X-Purpose-Of-Use is not granted by the token (an anonymous request has none)"
    );
}

mod remote;
mod setup;
