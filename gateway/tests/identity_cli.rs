//! `anchorgate keygen --kind issuer` and `anchorgate token` end to end: the real binary makes a key and
//! a JWKS, mints a token, and the library's Authenticator accepts it with that JWKS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use anchorgate::identity::{Authenticator, IdentityConfig, IssuerConfig, ReplayMode};

fn anchorgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_anchorgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn issuer_key_jwks_and_token() {
    let dir = std::env::temp_dir().join(format!("anchorgate-identity-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("issuer.pem");
    let jwks = dir.join("issuer.jwks.json");
    let (code, printed, err) = anchorgate(&[
        "keygen",
        "--kind",
        "issuer",
        "--alg",
        "EdDSA",
        "--out",
        key.to_str().unwrap(),
        "--jwks-out",
        jwks.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(printed, std::fs::read_to_string(&jwks).unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwritten.
    let (code, _, err) =
        anchorgate(&["keygen", "--kind", "issuer", "--out", key.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("exists"), "{err}");

    let claims = r#"{"iss":"https://idp.test","aud":"https://gw.test/fhir","sub":"Practitioner/prac-a","scope":"user/*.rs","extensions":{"hl7-b2b":{"organization_id":"Organization/org-h1","purpose_of_use":["TREAT"]}}}"#;
    let (code, token, err) = anchorgate(&[
        "token",
        "--issuer-key",
        key.to_str().unwrap(),
        "--claims",
        claims,
        "--ttl",
        "60",
    ]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim();

    let cfg = IdentityConfig {
        partners_file: Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/partners.toml"),
        ),
        issuers: vec![IssuerConfig {
            issuer: "https://idp.test".into(),
            jwks_file: Some(jwks),
            jwks_url: None,
            refresh_secs: 300,
            replay: ReplayMode::Reusable,
            require_jti: true,
        }],
        ..IdentityConfig::default()
    };
    let a = Authenticator::new(&cfg, Some("https://gw.test/fhir")).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let p = a.authenticate(&headers, now).await.unwrap();
    assert_eq!(p.fhir_user, None);
    assert_eq!(p.subject.as_deref(), Some("Practitioner/prac-a"));
    assert_eq!(p.country.as_deref(), Some("GB"));
    assert_eq!(p.purpose.as_deref(), Some("TREAT"));
    assert!(p.jti.is_some());
    // A minute later plus leeway, it has expired.
    assert!(a.authenticate(&headers, now + 60 + 30).await.is_err());

    // The ledger keygen is unchanged.
    let ledger = dir.join("ledger.key");
    let (code, verifier, err) = anchorgate(&[
        "keygen",
        "--origin",
        "test.anchorgate/ledger",
        "--out",
        ledger.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(verifier.starts_with("test.anchorgate/ledger+"));
    let (code, _, err) = anchorgate(&["keygen", "--out", dir.join("x").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("--origin is required"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
