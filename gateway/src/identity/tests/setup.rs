//! Start-up: `[identity]` validation, and the test issuer keys behind `anchorgate keygen --kind
//! issuer` and `anchorgate token`.

use super::*;
use crate::config::{Config, ConfigError};

fn setting_of(e: ConfigError) -> (&'static str, String) {
    match e {
        ConfigError::Invalid { setting, reason } => (setting, reason),
        other => panic!("not an invalid setting: {other}"),
    }
}

#[test]
fn config_parses_and_validates() {
    let dir = temp_dir();
    let issuer = TestIssuer::new(SigAlg::ES256);
    let jwks = dir.join("idp.jwks.json");
    std::fs::write(&jwks, issuer.key.jwks(&issuer.kid).to_string()).unwrap();
    let cfg_file = dir.join("anchorgate.toml");
    std::fs::write(
        &cfg_file,
        r#"
[identity]
anonymous = false
audience = "https://gw.test/fhir"
leeway_secs = 60

[[identity.issuers]]
issuer = "https://idp.test"
jwks_file = "idp.jwks.json"
replay = "single-use"
require_jti = true

[[identity.issuers]]
issuer = "https://remote.test"
jwks_url = "https://remote.test/jwks"
refresh_secs = 600
"#,
    )
    .unwrap();
    let cfg = Config::from_file(&cfg_file).unwrap();
    cfg.identity.check().unwrap();
    assert_eq!(cfg.identity.issuers[0].replay, ReplayMode::SingleUse);
    assert_eq!(cfg.identity.issuers[1].replay, ReplayMode::Reusable);
    // Relative paths resolve next to the config file; without partners_file the shipped registry applies.
    let a = Authenticator::new(&cfg.identity, None).unwrap();
    assert_eq!(a.partners().len(), 4);
    assert_eq!(a.audience.as_deref(), Some("https://gw.test/fhir"));
    assert!(Config::from_toml("[identity]\nanonymus = true\n").is_err());
    assert!(
        Config::from_toml("[[identity.issuers]]\nissuer = \"x\"\nreplay = \"never\"\n").is_err()
    );
}

#[test]
fn bad_settings_name_themselves() {
    let dir = temp_dir();
    let issuer = TestIssuer::new(SigAlg::ES256);
    let good = issuer.config(ISS, &dir);
    let check = |f: &dyn Fn(&mut IdentityConfig)| {
        let mut c = config(vec![good.clone()]);
        f(&mut c);
        setting_of(c.check().unwrap_err())
    };
    let (s, r) = check(&|c| c.issuers[0].jwks_file = Some(dir.join("missing.json")));
    assert_eq!(s, "identity.issuers.jwks_file");
    assert!(
        r.contains("cannot read") && r.contains("missing.json"),
        "{r}"
    );
    let not_jwks = dir.join("not.json");
    std::fs::write(
        &not_jwks,
        "{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}",
    )
    .unwrap();
    let (s, r) = check(&|c| c.issuers[0].jwks_file = Some(not_jwks.clone()));
    assert_eq!(s, "identity.issuers.jwks_file");
    assert!(r.contains("none of its 1 keys"), "{r}");
    let (s, _) = check(&|c| c.issuers[0].jwks_url = Some("https://x.test/jwks".parse().unwrap()));
    assert_eq!(s, "identity.issuers");
    let (s, r) = check(&|c| {
        c.issuers[0].jwks_file = None;
        c.issuers[0].jwks_url = Some("http://idp.example.org/jwks".parse().unwrap());
    });
    assert_eq!(s, "identity.issuers.jwks_url");
    assert!(r.contains("must be https"), "{r}");
    let (s, _) = check(&|c| c.leeway_secs = 301);
    assert_eq!(s, "identity.leeway_secs");
    let (s, _) = check(&|c| c.issuers[0].refresh_secs = 1);
    assert_eq!(s, "identity.issuers.refresh_secs");
    let (s, r) = check(&|c| c.issuers.push(c.issuers[0].clone()));
    assert_eq!(s, "identity.issuers");
    assert!(r.contains("twice"));
    let (s, _) = check(&|c| c.partners_file = Some(dir.join("no-partners.toml")));
    assert_eq!(s, "identity.partners_file");
    let (s, _) = check(&|c| c.replay_cache_capacity = 0);
    assert_eq!(s, "identity.replay_cache_capacity");
    // With issuers, an audience is required.
    let (s, _) = setting_of(Authenticator::new(&config(vec![good.clone()]), None).unwrap_err());
    assert_eq!(s, "identity.audience");
    // Defaults are valid: no issuers, no registry needed.
    IdentityConfig::default().check().unwrap();
    // Loopback http is allowed for a JWKS URL.
    let mut c = config(vec![good]);
    c.issuers[0].jwks_file = None;
    c.issuers[0].jwks_url = Some("http://127.0.0.1:9/jwks".parse().unwrap());
    c.check().unwrap();
}

#[test]
fn jwks_parsing_skips_unusable_keys() {
    let es = TestIssuer::new(SigAlg::ES256);
    let mut doc = es.key.jwks(&es.kid);
    let keys = doc["keys"].as_array_mut().unwrap();
    let mut enc = keys[0].clone();
    enc["use"] = "enc".into();
    enc["kid"] = "enc".into();
    let mut private = keys[0].clone();
    private["d"] = "AAAA".into();
    private["kid"] = "private".into();
    let mut wrong_alg = keys[0].clone();
    wrong_alg["alg"] = "ES384".into();
    wrong_alg["kid"] = "wrong".into();
    keys.extend([
        enc,
        private,
        wrong_alg,
        json!({"kty": "oct", "k": "AAAA"}),
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
    ]);
    let set = jwks::KeySet::parse(&doc.to_string()).unwrap();
    assert_eq!(set.keys.len(), 1);
    assert!(set.has_kid(&es.kid));
    assert!(jwks::KeySet::parse("[]")
        .unwrap_err()
        .contains("no \"keys\" array"));
    assert!(jwks::KeySet::parse("nope").is_err());
}

#[test]
fn generated_keys_and_minted_tokens() {
    for alg in [SigAlg::ES256, SigAlg::ES384, SigAlg::EdDSA] {
        let (key, pem) = IssuerKey::generate(alg).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = IssuerKey::from_pem(pem.as_bytes(), None).unwrap();
        assert_eq!(again.alg(), alg);
        assert_eq!(again.thumbprint(), key.thumbprint());
        let jwk = key.public_jwk("k1");
        assert_eq!(jwk["alg"], alg.name());
        assert_eq!(jwk["use"], "sig");
        assert!(jwk.get("d").is_none());
    }
    assert!(matches!(
        IssuerKey::generate(SigAlg::RS256),
        Err(KeyError::NoRsaGeneration)
    ));
}

#[tokio::test]
async fn minted_tokens_verify_with_the_printed_jwks() {
    let (key, _) = IssuerKey::generate(SigAlg::ES256).unwrap();
    let dir = temp_dir();
    let jwks = dir.join("jwks.json");
    // The default kid is the thumbprint on both sides.
    std::fs::write(&jwks, key.jwks(&key.thumbprint()).to_string()).unwrap();
    let mut cfg = config(vec![]);
    cfg.issuers.push(IssuerConfig {
        issuer: ISS.into(),
        jwks_file: Some(jwks),
        jwks_url: None,
        refresh_secs: 300,
        replay: ReplayMode::Reusable,
        require_jti: true,
    });
    let a = Authenticator::new(&cfg, Some(AUD)).unwrap();
    let claims =
        json!({"iss": ISS, "aud": AUD, "sub": "Practitioner/prac-a", "scope": "user/*.rs"});
    let token = mint(&key, None, claims.clone(), 120, NOW).unwrap();
    let p = auth(&a, &token).await.unwrap();
    assert_eq!(p.expires_at, Some(NOW + 120));
    assert!(p.jti.is_some());
    // Given claims win over the defaults.
    let mut c = claims;
    c["exp"] = (NOW + 5).into();
    c["jti"] = "fixed".into();
    let p = auth(&a, &mint(&key, None, c, 120, NOW).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (p.expires_at, p.jti.as_deref()),
        (Some(NOW + 5), Some("fixed"))
    );
    assert!(matches!(
        mint(&key, None, json!([1]), 60, NOW),
        Err(KeyError::ClaimsNotObject)
    ));
}

#[test]
fn rsa_pem_forms_and_alg_choice() {
    let pkcs8 = IssuerKey::from_pem(RSA_PEM.as_bytes(), None).unwrap();
    assert_eq!(pkcs8.alg(), SigAlg::RS256);
    assert_eq!(
        IssuerKey::from_pem(RSA_PEM.as_bytes(), Some(SigAlg::RS384))
            .unwrap()
            .alg(),
        SigAlg::RS384
    );
    assert!(matches!(
        IssuerKey::from_pem(RSA_PEM.as_bytes(), Some(SigAlg::ES256)),
        Err(KeyError::AlgMismatch {
            alg: "ES256",
            kind: "RSA"
        })
    ));
    let jwk = pkcs8.public_jwk("r");
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["e"], "AQAB");
    let pkcs1 = include_str!("../../../../tests/fixtures/identity/test-only-rsa-2048.pkcs1.pem");
    let pkcs1 = IssuerKey::from_pem(pkcs1.as_bytes(), None).unwrap();
    assert_eq!(
        pkcs1.thumbprint(),
        pkcs8.thumbprint(),
        "the same key in both forms"
    );
    let token = pkcs1.sign("r", &json!({"a": 1})).unwrap();
    assert_eq!(token.split('.').count(), 3);
    assert!(matches!(
        IssuerKey::from_pem(b"nothing", None),
        Err(KeyError::NoKey)
    ));
    let sec1 = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBYr\n-----END EC PRIVATE KEY-----\n";
    assert!(matches!(
        IssuerKey::from_pem(sec1.as_bytes(), None),
        Err(KeyError::Sec1)
    ));
}
