//! Every failure answers with the right status and an OperationOutcome: unknown routes, bad media types,
//! oversized, malformed and hostile bodies, slow clients, and an upstream that is down or hangs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anchorgate_e2e::{
    answering_upstream, assert_outcome, client, faulty_upstream, free_port, get_in_background,
    superuser_token, Gateway, GatewayOptions, Upstream,
};

fn post(
    base: &str,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::blocking::Body>,
) -> (u16, String) {
    anchorgate_e2e::post_body(base, path, content_type, body)
}

#[test]
fn unknown_routes_and_methods() {
    let gw = Gateway::shared();
    let c = client();
    let r = c.get(format!("{}/NotAType/1", gw.base)).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_outcome(&r.text().unwrap(), "not-found");
    let r = c.get(format!("{}/nowhere", gw.root())).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_outcome(&r.text().unwrap(), "not-found");
    let r = c.delete(format!("{}/metadata", gw.base)).send().unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("allow").is_some());
    assert_outcome(&r.text().unwrap(), "not-supported");
    let r = c
        .get(format!("{}/Patient/bad_id!", gw.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_outcome(&r.text().unwrap(), "value");
}

#[test]
fn error_format_follows_the_client() {
    let gw = Gateway::shared();
    let r = client()
        .get(format!("{}/NotAType", gw.base))
        .header("accept", "application/fhir+xml")
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+xml"));
    let text = r.text().unwrap();
    assert!(
        text.contains("<OperationOutcome xmlns=\"http://hl7.org/fhir\">"),
        "{text}"
    );
    assert!(text.contains("<code value=\"not-found\"/>"));
}

#[test]
fn unsupported_media_type_is_415() {
    let gw = Gateway::shared();
    let (status, body) = post(&gw.base, "Patient", "text/plain", "{}");
    assert_eq!(status, 415);
    assert_outcome(&body, "not-supported");
    let (status, _) = post(&gw.base, "Patient/_search", "application/fhir+json", "{}");
    assert_eq!(status, 415);
    // Binary may carry raw content of its own type.
    let (status, _) = post(
        &gw.base,
        "Binary",
        "image/png",
        vec![0x89u8, b'P', b'N', b'G'],
    );
    assert_ne!(status, 415);
}

#[test]
fn malformed_and_hostile_bodies_are_400_with_location() {
    let gw = Gateway::shared();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("application/fhir+json", br#"{"resourceType": "Patient", "#.to_vec()),
        ("application/fhir+json", b"".to_vec()),
        (
            "application/fhir+json",
            br#"{"resourceType":"Patient","active":true,"active":false}"#.to_vec(),
        ),
        ("application/fhir+json", b"{\"resourceType\":\"Patient\",\"x\":\"\xff\xfe\"}".to_vec()),
        ("application/fhir+json", ("[".repeat(10_000) + &"]".repeat(10_000)).into_bytes()),
        ("application/fhir+xml", b"<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"1\"></Patient>".to_vec()),
        (
            "application/fhir+xml",
            br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Patient xmlns="http://hl7.org/fhir">&lol1;</Patient>"#.to_vec(),
        ),
        (
            "application/fhir+xml",
            br#"<?xml version="1.0"?><!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Patient xmlns="http://hl7.org/fhir"><id value="&xxe;"/></Patient>"#.to_vec(),
        ),
        ("application/fhir+xml", ("<a>".repeat(5_000) + &"</a>".repeat(5_000)).into_bytes()),
    ];
    for (ct, body) in cases {
        let started = Instant::now();
        let (status, text) = post(&gw.base, "Patient", ct, body);
        assert_eq!(status, 400, "{ct}: {text}");
        let oo = assert_outcome(&text, "structure");
        assert_eq!(oo["issue"][0]["expression"][0], "Patient", "{text}");
        assert!(!text.contains("root:"), "file content leaked: {text}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn oversized_bodies_are_413_declared_or_chunked() {
    let up = Upstream::shared();
    let gw = Gateway::start_with(
        &up.base,
        GatewayOptions {
            config_toml: Some("[limits]\nmax_request_body = 1024\n".into()),
            ..Default::default()
        },
    );
    let big = format!(
        r#"{{"resourceType":"Patient","text":{{"div":"{}"}}}}"#,
        "x".repeat(4096)
    );
    let (status, body) = post(&gw.base, "Patient", "application/fhir+json", big.clone());
    assert_eq!(status, 413);
    assert_outcome(&body, "too-costly");
    // Chunked: no Content-Length, so the limit is enforced while reading.
    let stream = reqwest::blocking::Body::new(std::io::Cursor::new(big.into_bytes()));
    let (status, body) = post(&gw.base, "Patient", "application/fhir+json", stream);
    assert_eq!(status, 413, "{body}");
    assert_outcome(&body, "too-costly");
}

#[test]
fn a_client_too_slow_to_send_its_body_gets_408() {
    let up = Upstream::shared();
    let gw = Gateway::start_with(
        &up.base,
        GatewayOptions {
            config_toml: Some("[timeouts]\nclient_body_ms = 500\n".into()),
            ..Default::default()
        },
    );
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /fhir/Patient HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {}\r\ncontent-type: application/fhir+json\r\ncontent-length: 100\r\n\r\n{{\"resourceType\"",
        superuser_token()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains("\"code\":\"timeout\""), "{out}");
}

#[test]
fn upstream_down_is_502_and_not_ready() {
    let dead = free_port();
    let gw = Gateway::start(&format!("http://127.0.0.1:{dead}/fhir"));
    let r = client()
        .get(format!("{}/Patient/1", gw.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_outcome(&r.text().unwrap(), "transient");
    let r = client()
        .get(format!("{}/readyz", gw.root()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        client()
            .get(format!("{}/healthz", gw.root()))
            .send()
            .unwrap()
            .status(),
        200
    );
    let metrics = gw.metrics_text();
    assert!(
        metrics.contains("anchorgate_upstream_errors_total{kind=\"unreachable\"} 1"),
        "{metrics}"
    );
}

#[test]
fn upstream_that_hangs_is_504_within_the_timeout() {
    let port = faulty_upstream(None);
    let gw = Gateway::start_with(
        &format!("http://127.0.0.1:{port}/fhir"),
        GatewayOptions {
            config_toml: Some("[timeouts]\nupstream_response_ms = 700\n".into()),
            ..Default::default()
        },
    );
    let started = Instant::now();
    let r = client()
        .get(format!("{}/Patient/1", gw.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_outcome(&r.text().unwrap(), "timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_upstream_answer_that_is_not_fhir_is_502() {
    // Each is refused whether it is judged as a read or as a search.
    let bodies = &[
        r#"{"hello":"world"}"#,
        "[1,2]",
        r#"{"resourceType":""}"#,
        "{not json",
    ];
    let port = answering_upstream(Some(Duration::ZERO), bodies);
    let gw = Gateway::start(&format!("http://127.0.0.1:{port}/fhir"));
    for (n, body) in bodies.iter().enumerate() {
        for path in [format!("Patient/{n}"), format!("Patient?name={n}")] {
            let r = client().get(format!("{}/{path}", gw.base)).send().unwrap();
            assert_eq!(r.status(), 502, "{body} for {path}");
            let text = r.text().unwrap();
            assert_outcome(&text, "exception");
            assert!(!text.contains("hello"), "{text}");
        }
    }
}

#[test]
fn at_capacity_the_gateway_answers_503_at_once() {
    let port = faulty_upstream(Some(Duration::from_secs(2)));
    let gw = Gateway::start_with(
        &format!("http://127.0.0.1:{port}/fhir"),
        GatewayOptions {
            config_toml: Some("[limits]\nmax_concurrent_requests = 1\n".into()),
            ..Default::default()
        },
    );
    let slow = get_in_background(format!("{}/Patient/slow", gw.base));
    std::thread::sleep(Duration::from_millis(300));
    let r = client()
        .get(format!("{}/Patient/other", gw.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_outcome(&r.text().unwrap(), "transient");
    assert_eq!(slow.join().unwrap(), 200);
}

#[test]
fn upstream_operation_outcomes_pass_through_unchanged() {
    let gw = Gateway::shared();
    let up = Upstream::shared();
    let direct = client()
        .get(format!("{}/Patient/does-not-exist", up.base))
        .send()
        .unwrap();
    let via = client()
        .get(format!("{}/Patient/does-not-exist", gw.base))
        .send()
        .unwrap();
    assert_eq!(direct.status(), 404);
    assert_eq!(via.status(), 404);
    // Byte-identical apart from the OperationOutcome id, which the upstream makes fresh per response.
    let strip_id = |mut v: serde_json::Value| {
        v.as_object_mut().unwrap().remove("id");
        v
    };
    let direct: serde_json::Value = direct.json().unwrap();
    let via: serde_json::Value = via.json().unwrap();
    assert_eq!(strip_id(direct), strip_id(via));
}

/// The gateway's peak resident memory so far (`VmHWM`), in bytes.
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn work_is_bounded_before_it_is_done() {
    // Issue 17 §4: a 2.5 KB JSON Patch copying an array into itself 30 times took the gateway past
    // 21 GB; one XML element with 200,000 attributes took 34 s; a Bundle's entries were not counted.
    let gw = Gateway::start(&Upstream::shared().base);
    let (status, created) = post(
        &gw.base,
        "Patient",
        "application/fhir+json",
        r#"{"resourceType":"Patient","name":[{"family":"Doubling","given":["Ada","Byron"]}]}"#,
    );
    assert_eq!(status, 201, "{created}");
    let id: serde_json::Value = serde_json::from_str(&created).unwrap();
    let id = id["id"].as_str().unwrap().to_owned();
    let copy = r#"{"op":"copy","from":"/name","path":"/name/-"}"#;
    let patch = format!("[{}]", vec![copy; 30].join(","));
    let started = Instant::now();
    let r = client()
        .patch(format!("{}/Patient/{id}", gw.base))
        .header("content-type", "application/json-patch+json")
        .body(patch)
        .send()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 422);
    let text = r.text().unwrap();
    let oo = assert_outcome(&text, "too-costly");
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("limits.max_"),
        "{text}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");

    let attrs: String = (0..200_000).map(|i| format!(" a{i}=\"\"")).collect();
    let xml =
        format!("<Patient xmlns=\"http://hl7.org/fhir\"{attrs}><active value=\"true\"/></Patient>");
    let started = Instant::now();
    let (status, text) = post(&gw.base, "Patient", "application/fhir+xml", xml);
    let took = started.elapsed();
    assert_eq!(status, 413, "{text}");
    assert!(
        assert_outcome(&text, "too-costly")["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("limits.max_xml_attributes")
    );
    assert!(took < Duration::from_secs(5), "{took:?}");

    let entry = r#"{"request":{"method":"GET","url":"Patient/x"}}"#;
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"batch","entry":[{}]}}"#,
        vec![entry; 50_001].join(",")
    );
    let (status, text) = post(&gw.base, "", "application/fhir+json", bundle);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("limits.max_bundle_entries"), "{text}");

    // Still serving, and never near the memory the patch asked for.
    let r = client()
        .get(format!("{}/Patient/{id}", gw.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let peak = peak_memory(gw.pid());
    assert!(peak < 1 << 30, "peak resident memory {} MiB", peak >> 20);
    eprintln!("peak resident memory {} MiB", peak >> 20);
}
