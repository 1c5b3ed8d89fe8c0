//! Configuration: loading, overrides, the path rule, the TOML round trip and the example file.

use super::*;

#[test]
fn defaults_are_valid() {
    Config::default().validate().unwrap();
}

#[test]
fn file_then_overrides() {
    let mut c = Config::from_toml(
        "listen = \"0.0.0.0:9000\"\nupstream = \"http://a:1/fhir\"\n[limits]\nmax_request_body = 10\n",
    )
    .unwrap();
    assert_eq!(c.limits.max_request_body, 10);
    c.apply_overrides(Overrides {
        upstream: Some("https://b/r4".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.upstream.as_str(), "https://b/r4");
    assert_eq!(c.listen.port(), 9000);
    c.validate().unwrap();
}

#[test]
fn default_policy_from_file_then_env_and_policy_dir_checked() {
    use crate::policy::DefaultPolicy;
    let mut c = Config::from_toml("[policy]\ndefault_policy = \"permit\"\n").unwrap();
    assert_eq!(c.policy.default_policy, DefaultPolicy::Permit);
    assert_eq!(Config::default().policy.default_policy, DefaultPolicy::Deny);
    c.apply_overrides(Overrides {
        default_policy: Some("deny".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.policy.default_policy, DefaultPolicy::Deny);
    let e = c
        .apply_overrides(Overrides {
            default_policy: Some("opt-out".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("policy.default_policy"), "{e}");
    assert!(Config::from_toml("[policy]\ndefault_policy = \"maybe\"\n").is_err());
    c.policy.dir = Some(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies"
    )));
    c.validate().unwrap();
    c.policy.dir = Some(PathBuf::from("/nonexistent/policies"));
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("policy.dir") && e.contains("policy.toml"), "{e}");
}

#[test]
fn rejects_unknown_keys_and_bad_values() {
    assert!(Config::from_toml("lisen = \"x\"").is_err());
    let mut c = Config::default();
    assert!(c
        .apply_overrides(Overrides {
            listen: Some("nope".into()),
            ..Default::default()
        })
        .is_err());
    c.upstream = Url::parse("ftp://x/fhir").unwrap();
    assert!(c.validate().is_err());
    let c = Config {
        upstream: Url::parse("http://x/fhir?a=b").unwrap(),
        ..Config::default()
    };
    assert!(c.validate().is_err());
    let mut c = Config::default();
    c.timeouts.upstream_response_ms = 0;
    assert!(c.validate().is_err());
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "anchorgate-config-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

/// Every path setting written relatively in a config file is relative to that file's directory, the
/// default `data_dir` too; absolute ones are kept; flags are relative to the working directory.
#[test]
fn relative_paths_follow_the_config_file() {
    let dir = temp_dir("paths");
    let file = dir.join("gw.toml");
    std::fs::write(
        &file,
        r#"
[validation]
definitions = ["defs", "/abs/defs"]
[upstream_client]
ca_file = "ca.pem"
[tls]
cert = "tls/cert.pem"
key = "/etc/tls/key.pem"
[ledger]
dir = "ledger-here"
key_file = "keys/ledger.key"
[identity]
partners_file = "partners.toml"
[[identity.issuers]]
issuer = "https://idp.test"
jwks_file = "idp.jwks.json"
[policy]
dir = "../policies"
"#,
    )
    .unwrap();
    let c = Config::from_file(&file).unwrap();
    assert_eq!(c.data_dir, dir.join("anchorgate-data"));
    assert_eq!(
        c.validation.definitions,
        [dir.join("defs"), "/abs/defs".into()]
    );
    assert_eq!(c.upstream_client.ca_file, Some(dir.join("ca.pem")));
    let tls = c.tls.as_ref().unwrap();
    assert_eq!(
        (&tls.cert, &tls.key),
        (&dir.join("tls/cert.pem"), &"/etc/tls/key.pem".into())
    );
    assert_eq!(c.ledger_dir(), dir.join("ledger-here"));
    assert_eq!(c.ledger.key_file, Some(dir.join("keys/ledger.key")));
    assert_eq!(c.identity.partners_file, Some(dir.join("partners.toml")));
    assert_eq!(
        c.identity.issuers[0].jwks_file,
        Some(dir.join("idp.jwks.json"))
    );
    assert_eq!(c.policy.dir, Some(dir.join("../policies")));
    // A config file named relatively resolves the same way (from_file makes its name absolute).
    let mut c = Config::from_file(&file).unwrap();
    assert!(c.path_settings_mut().iter().all(|(_, p)| p.is_absolute()));
    // Flags are typed in a shell: relative to the working directory, not the file.
    c.apply_overrides(Overrides {
        data_dir: Some("flag-data".into()),
        ledger_key_file: Some("flag.key".into()),
        ..Default::default()
    })
    .unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.data_dir, cwd.join("flag-data"));
    assert_eq!(c.ledger.key_file, Some(cwd.join("flag.key")));
    assert_eq!(
        c.ledger_dir(),
        dir.join("ledger-here"),
        "ledger.dir stays the file's"
    );
    // Without a file, the defaults resolve against the working directory.
    let c = Config::load(None, Overrides::default()).unwrap();
    assert_eq!(c.data_dir, cwd.join("anchorgate-data"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A partner registry named in a config file, relatively, is looked for beside the file, and its
/// absence is an error naming the setting and the path (never an empty registry); unnamed, the
/// shipped registry applies and nothing is looked for.
#[test]
fn a_named_partners_file_must_exist_beside_the_config() {
    let dir = temp_dir("partners");
    let file = dir.join("gw.toml");
    std::fs::write(&file, "[identity]\npartners_file = \"partners.toml\"\n").unwrap();
    let e = Config::load(Some(&file), Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("identity.partners_file")
            && e.contains(&dir.join("partners.toml").display().to_string()),
        "{e}"
    );
    std::fs::copy(
        repo_file("policies/partners.toml"),
        dir.join("partners.toml"),
    )
    .unwrap();
    Config::load(Some(&file), Overrides::default()).unwrap();
    std::fs::write(&file, "").unwrap();
    let c = Config::load(Some(&file), Overrides::default()).unwrap();
    assert_eq!(c.identity.partners_file, None);
    assert!(c.partner_registry_source().starts_with("shipped"));
    std::fs::remove_dir_all(&dir).ok();
}

/// `check-config` prints `to_toml`: it must read back (as a config file would) to the same settings.
#[test]
fn the_effective_config_round_trips_through_toml() {
    let example = Config::load(
        Some(&repo_file("anchorgate.example.toml")),
        Overrides::default(),
    )
    .unwrap();
    let mut custom = Config {
        public_base: Some(Url::parse("https://fhir.example.org/fhir").unwrap()),
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..Config::default()
    };
    custom.validation.per_type.insert(
        "Binary".into(),
        crate::validate::enforce::ValidationMode::Off,
    );
    custom.ledger.max_store_bytes = Some(1 << 30);
    custom.tls = Some(TlsConfig {
        cert: "/tls/cert.pem".into(),
        key: "/tls/key.pem".into(),
    });
    for cfg in [Config::default(), example, custom] {
        let text = cfg.to_toml().unwrap();
        let back = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back.to_toml().unwrap(), text);
    }
}

/// The shipped example is accepted as it is: every file it names exists, its issuer is usable, and
/// the only warning is the ledger key that `serve` needs from a flag.
#[test]
fn the_example_config_is_accepted() {
    let path = repo_file("anchorgate.example.toml");
    let c = Config::from_file(&path).unwrap();
    c.validate().unwrap();
    let jwks = c.identity.issuers[0].jwks_file.as_ref().unwrap();
    assert!(jwks.is_file(), "{}", jwks.display());
    crate::identity::Authenticator::new(&c.identity, None).unwrap();
    let warnings = c.warnings();
    assert!(
        warnings.iter().all(|w| w.contains("ledger")),
        "{warnings:?}"
    );
    // Every setting of the defaults is in the example, with the same value, except those the
    // example sets on purpose (an audience and an issuer) and the paths it resolves.
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let written: toml::Value = toml::from_str(&text).unwrap();
    for (section, value) in defaults.as_table().unwrap() {
        let Some(table) = value.as_table() else {
            assert!(written.get(section).is_some(), "{section} is missing");
            continue;
        };
        for key in table.keys() {
            assert!(
                written.get(section).and_then(|s| s.get(key)).is_some(),
                "{section}.{key} is missing from the example"
            );
        }
    }
}

/// A configuration without an issuer says that every FHIR request will get 401, and how to fix it.
#[test]
fn missing_issuer_and_key_are_warned_about() {
    let w = Config::default().warnings();
    assert!(
        w.iter()
            .any(|w| w.contains("401") && w.contains("[[identity.issuers]]")),
        "{w:?}"
    );
}
