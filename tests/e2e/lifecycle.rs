//! The binary's life: `--help`, config refused before binding, graceful SIGTERM, and TLS termination.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::time::Duration;

use anchorgate_e2e::{
    client, faulty_upstream, free_port, gateway_bin, get_in_background, work_dir, Gateway,
    GatewayOptions, Upstream,
};

#[test]
fn help_documents_every_subcommand() {
    let out = Command::new(gateway_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "check-config"] {
        assert!(text.contains(sub), "{text}");
    }
    let out = Command::new(gateway_bin())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--upstream",
        "ANCHORGATE_UPSTREAM",
        "--listen",
        "ANCHORGATE_LISTEN",
        "ANCHORGATE_PUBLIC_BASE",
        "ANCHORGATE_DATA_DIR",
    ] {
        assert!(text.contains(flag), "{flag} missing: {text}");
    }
}

/// Runs `anchorgate serve` with `args` and `env`, and expects exit 2 with `needle` in stderr and `port`
/// never bound.
fn expect_refusal(port: u16, args: &[&str], env: &[(&str, &str)], needle: &str) {
    let mut cmd = Command::new(gateway_bin());
    cmd.arg("serve");
    if !env.iter().any(|(k, _)| *k == "ANCHORGATE_LISTEN") {
        cmd.arg("--listen").arg(format!("127.0.0.1:{port}"));
    }
    let out = cmd.args(args).envs(env.iter().copied()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
    assert!(err.contains(needle), "{needle} not in {err}");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port was bound"
    );
}

#[test]
fn invalid_config_exits_2_before_binding() {
    let port = free_port();
    let dir = work_dir("badconfig");
    let bad_file = dir.join("bad.toml");
    std::fs::write(&bad_file, "listen = \"127.0.0.1:1\"\nnot_a_setting = 1\n").unwrap();
    let bad = bad_file.display().to_string();
    let missing = dir.join("missing.toml").display().to_string();
    expect_refusal(
        port,
        &["--upstream", "ftp://x/fhir"],
        &[],
        "scheme must be http or https",
    );
    expect_refusal(
        port,
        &[],
        &[("ANCHORGATE_UPSTREAM", "not a url")],
        "upstream",
    );
    expect_refusal(port, &[], &[("ANCHORGATE_LISTEN", "nowhere")], "listen");
    expect_refusal(port, &["--config", &bad], &[], "not_a_setting");
    expect_refusal(
        port,
        &["--config", &missing],
        &[],
        "cannot read config file",
    );
}

/// A port already in use is found before the ledger is opened: exit 1, the error said once, and no
/// ledger made (so no key entry appended to any ledger).
#[test]
fn a_port_in_use_fails_before_the_ledger_is_opened() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = work_dir("port-in-use");
    let out = Command::new(gateway_bin())
        .args(["serve", "--ephemeral-ledger-key", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("ANCHORGATE_CONFIG")
        .env("ANCHORGATE_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("cannot listen").count(), 1, "{err}");
    assert!(err.contains(&port.to_string()), "{err}");
    assert!(
        !dir.join("data/ledger").exists(),
        "the ledger was opened: {err}"
    );
    drop(taken);
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_0() {
    let port = faulty_upstream(Some(Duration::from_millis(1500)));
    let mut gw = Gateway::start(&format!("http://127.0.0.1:{port}/fhir"));
    let in_flight = get_in_background(format!("{}/Patient/slow", gw.base));
    std::thread::sleep(Duration::from_millis(300));
    let status = gw
        .terminate(Duration::from_secs(10))
        .expect("gateway did not exit");
    assert!(status.success(), "{status}");
    assert_eq!(
        in_flight.join().unwrap(),
        200,
        "in-flight request was not drained"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", gw.port)).is_err(),
        "still accepting"
    );
    assert!(gw.log_text().contains("shutting down"));
}

#[test]
fn tls_termination_serves_fhir_over_https() {
    let dir = work_dir("tls");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let gw = Gateway::start_with(
        &Upstream::shared().base,
        GatewayOptions {
            config_toml: Some(format!(
                "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                dir.join("cert.pem").display(),
                dir.join("key.pem").display()
            )),
            https: true,
            ..Default::default()
        },
    );
    let c = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/fhir/metadata", gw.port);
    let mut ok = None;
    for _ in 0..100 {
        if let Ok(r) = c.get(&url).send() {
            ok = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = ok.expect("https request failed");
    assert_eq!(r.status(), 200);
    let cs: serde_json::Value = r.json().unwrap();
    assert_eq!(
        cs["implementation"]["url"],
        format!("https://localhost:{}/fhir", gw.port)
    );
    // Plain HTTP to the TLS port is refused, not served.
    assert!(client()
        .get(format!("http://127.0.0.1:{}/healthz", gw.port))
        .send()
        .is_err());
}
