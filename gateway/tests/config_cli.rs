//! The configuration and one-shot commands end to end: `check-config` on the shipped example and on a
//! broken file, each subcommand's help, and `ledger erase` of nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anchorgate::config::Config;

/// Runs the binary with `args` and no ANCHORGATE_* settings from the caller's environment.
fn anchorgate(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_anchorgate"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ANCHORGATE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.args(args).current_dir(cwd).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("anchorgate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example is accepted from any working directory (its paths follow the file), and what
/// `check-config` prints is TOML that reads back to the same configuration.
#[test]
fn check_config_prints_the_example_as_toml() {
    let elsewhere = temp_dir("check-config");
    let example = repo_root().join("anchorgate.example.toml");
    let (code, out, err) = anchorgate(
        &["check-config", "--config", example.to_str().unwrap()],
        &elsewhere,
    );
    assert_eq!(code, 0, "{err}");
    let cfg = Config::from_toml(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(cfg.to_toml().unwrap().trim(), body(&out).trim());
    let jwks = cfg.identity.issuers[0].jwks_file.clone().unwrap();
    assert!(jwks.is_absolute() && jwks.is_file(), "{}", jwks.display());
    assert!(
        cfg.data_dir.starts_with(repo_root()),
        "{}",
        cfg.data_dir.display()
    );
    assert!(out.contains("# warning: no ledger signing key"), "{out}");
    // With a key flag the warning goes; the flag's relative path is the working directory's.
    let (code, out, _) = anchorgate(
        &[
            "check-config",
            "--config",
            example.to_str().unwrap(),
            "--ledger-key-file",
            "ledger.key",
        ],
        &elsewhere,
    );
    assert_eq!(code, 0);
    assert!(!out.contains("# warning:"), "{out}");
    let cfg = Config::from_toml(&out).unwrap();
    let cwd = elsewhere.canonicalize().unwrap();
    assert_eq!(cfg.ledger.key_file, Some(cwd.join("ledger.key")));
    // A config error is exit 2, said once on stderr, nothing on stdout.
    let bad = elsewhere.join("bad.toml");
    std::fs::write(&bad, "[identity]\npartners_file = \"nowhere.toml\"\n").unwrap();
    let (code, out, err) = anchorgate(&["check-config", "-c", bad.to_str().unwrap()], &elsewhere);
    assert_eq!(code, 2);
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.matches("identity.partners_file").count(), 1, "{err}");
    assert!(
        err.contains(&elsewhere.join("nowhere.toml").display().to_string()),
        "{err}"
    );
}

/// The TOML part of `check-config`'s output: without the leading comments and the warnings.
fn body(out: &str) -> String {
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One-shot commands list only their own flags, every subcommand shows examples, and the top level
/// states the exit codes.
#[test]
fn help_is_per_command_with_examples() {
    let cwd = std::env::temp_dir();
    let (_, top, _) = anchorgate(&["--help"], &cwd);
    for needle in [
        "Exit codes",
        "validating, consent-enforcing, ledger-anchoring",
        "ledger erase",
    ] {
        assert!(top.contains(needle), "{needle}: {top}");
    }
    let (_, serve, _) = anchorgate(&["serve", "--help"], &cwd);
    for needle in [
        "--ledger-key-file",
        "--ephemeral-ledger-key",
        "[[identity.issuers]]",
        "keygen",
    ] {
        assert!(serve.contains(needle), "{needle}: {serve}");
    }
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["ledger", "erase"],
            &["--config", "--data-dir", "--ledger-key-file"],
        ),
        (
            &["consent", "import"],
            &["--config", "--data-dir", "--ledger-key-file", "--upstream"],
        ),
        (
            &["audit", "export"],
            &["--config", "--data-dir", "--filter"],
        ),
        (&["check-config"], &["--config", "--listen", "--upstream"]),
    ];
    for (cmd, flags) in cases {
        let args: Vec<&str> = cmd.iter().copied().chain(["--help"]).collect();
        let (code, text, _) = anchorgate(&args, &cwd);
        assert_eq!(code, 0);
        assert!(text.contains("Example"), "{cmd:?}: {text}");
        for f in flags {
            assert!(text.contains(f), "{cmd:?} lacks {f}: {text}");
        }
        if cmd[0] != "check-config" {
            for f in [
                "--listen",
                "--worker-threads",
                "--public-base",
                "--default-policy",
            ] {
                assert!(!text.contains(f), "{cmd:?} lists {f}: {text}");
            }
        }
    }
    for cmd in [
        &["validate"][..],
        &["keygen"],
        &["token"],
        &["ledger", "verify"],
    ] {
        let args: Vec<&str> = cmd.iter().copied().chain(["--help"]).collect();
        let (_, text, _) = anchorgate(&args, &cwd);
        assert!(text.contains("Example"), "{cmd:?}: {text}");
    }
}

/// `ledger erase` of a resource the ledger has no entry of exits 2 and appends nothing.
#[test]
fn erasing_nothing_exits_2_and_appends_nothing() {
    let dir = temp_dir("erase-nothing");
    let (code, _, err) = anchorgate(
        &[
            "keygen",
            "--origin",
            "test.example/log",
            "--out",
            "ledger.key",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{err}");
    let erase = || {
        anchorgate(
            &[
                "ledger",
                "erase",
                "--type",
                "Patient",
                "--id",
                "nobody",
                "--data-dir",
                "data",
                "--ledger-key-file",
                "ledger.key",
            ],
            &dir,
        )
    };
    let entries = || -> i64 {
        let db = rusqlite::Connection::open(dir.join("data/ledger/ledger.sqlite")).unwrap();
        db.query_row("SELECT COUNT(*) FROM anchors", [], |r| r.get(0))
            .unwrap()
    };
    // The first run opens a new log, which records its signing key; the erasure records nothing.
    let (code, out, err) = erase();
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("nothing to erase") && err.contains("Patient/nobody"),
        "{err}"
    );
    assert_eq!(err.matches("nothing to erase").count(), 1, "{err}");
    let after_first = entries();
    assert_eq!(after_first, 1, "only the signing-key event");
    let (code, _, _) = erase();
    assert_eq!(code, 2);
    assert_eq!(
        entries(),
        after_first,
        "an erasure of nothing appended an entry"
    );
    // An unknown resource type is a usage error before the ledger is opened.
    let (code, _, err) = anchorgate(
        &[
            "ledger",
            "erase",
            "--type",
            "Patient2",
            "--id",
            "x",
            "--data-dir",
            "data2",
        ],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(!dir.join("data2/ledger").exists());
    std::fs::remove_dir_all(&dir).ok();
}
