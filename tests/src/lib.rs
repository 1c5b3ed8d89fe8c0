//! End-to-end harness: starts the real test upstream (sekmet) and the real `anchorgate` binary on free
//! loopback ports, waits for readiness, and cleans up even when a test process dies.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test-only crate: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, or `target/` in the repository.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Scratch space for this test process, under `target/e2e/`.
pub fn work_dir(name: &str) -> PathBuf {
    let e2e = target_dir().join("e2e");
    let dir = e2e.join(format!("{}-{name}", std::process::id()));
    clean_at_exit(&e2e);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes this process's scratch directories once it has exited and its servers are reaped, so a test run
/// does not leave gigabytes behind (a sekmet store alone is ~45 MB). `ANCHORGATE_KEEP_SCRATCH=1` keeps them
/// for a post-mortem.
fn clean_at_exit(e2e: &Path) {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("ANCHORGATE_KEEP_SCRATCH").is_some() {
            return;
        }
        let me = std::process::id();
        // Servers are killed within 3 s of our exit (reap_with_parent); wait a little longer.
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; sleep 5; rm -rf \"$0\"/{me}-*"
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .arg(e2e)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    });
}

/// The `anchorgate` binary: `ANCHORGATE_BIN`, or the debug build, built once if missing or stale.
pub fn gateway_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("ANCHORGATE_BIN") {
            return PathBuf::from(p);
        }
        // `cargo build` is a no-op when the binary is fresh; running it keeps `cargo test` self-sufficient.
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "anchorgate", "--bin", "anchorgate"])
            .current_dir(repo_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building anchorgate failed");
        target_dir().join("debug").join("anchorgate")
    })
    .clone()
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills `pid` when this test process exits, however it exits: a detached shell polls for our pid.
pub fn reap_with_parent(pid: u32) {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -TERM {pid} 2>/dev/null; sleep 3; kill -KILL {pid} 2>/dev/null"
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// Polls `url` until it answers 200, or panics after `within`.
pub fn wait_for_ok(url: &str, within: Duration) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < within {
        if let Ok(r) = client.get(url).send() {
            if r.status().is_success() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{url} did not answer 200 within {within:?}");
}

/// A running sekmet test upstream.
#[derive(Debug)]
pub struct Upstream {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its FHIR base.
    pub base: String,
    workdir: PathBuf,
}

fn sekmet_script() -> PathBuf {
    repo_root().join("tests/upstream/sekmet.sh")
}

impl Upstream {
    /// Starts a fresh sekmet with an empty store.
    pub fn start() -> Upstream {
        let port = free_port();
        let workdir = work_dir(&format!("sekmet-{port}"));
        let out = Command::new("bash")
            .arg(sekmet_script())
            .arg("start")
            .arg(port.to_string())
            .arg(&workdir)
            .output()
            .expect("run sekmet.sh");
        assert!(
            out.status.success(),
            "sekmet did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Ok(pid) = std::fs::read_to_string(workdir.join("sekmet.pid")) {
            if let Ok(pid) = pid.trim().parse() {
                reap_with_parent(pid);
            }
        }
        Upstream {
            port,
            base: format!("http://127.0.0.1:{port}/fhir"),
            workdir,
        }
    }

    /// One upstream shared by every test in this process.
    pub fn shared() -> &'static Upstream {
        static UP: OnceLock<Upstream> = OnceLock::new();
        UP.get_or_init(Upstream::start)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(sekmet_script())
            .arg("stop")
            .arg(&self.workdir)
            .output();
    }
}

/// A running `anchorgate serve`.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its FHIR base as clients see it.
    pub base: String,
    /// Where its stderr (the JSON log) goes.
    pub log: PathBuf,
    /// Its data directory (the ledger lives in `ledger/` below it).
    pub data_dir: PathBuf,
    /// Its ledger signing key file.
    pub key_file: PathBuf,
    /// Its config file and upstream, for running subcommands on the same setup ([`Gateway::command`]).
    config: (PathBuf, String),
    /// The ledger's verifier key (signed-note form), from `anchorgate keygen`.
    pub verifier: String,
}

/// How to start a gateway.
#[derive(Debug, Default, Clone)]
pub struct GatewayOptions {
    /// Extra command-line arguments after `serve`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Config file contents, written to a file and passed with `--config`.
    pub config_toml: Option<String>,
    /// Scheme to probe readiness with (`https` for TLS tests).
    pub https: bool,
    /// Restart on an earlier gateway's state: its data directory, key file and verifier key.
    pub reuse: Option<(PathBuf, PathBuf, String)>,
}

impl Gateway {
    /// Starts a gateway in front of `upstream` with default options.
    pub fn start(upstream: &str) -> Gateway {
        Gateway::start_with(upstream, GatewayOptions::default())
    }

    /// Starts a gateway in front of `upstream` and waits until `/healthz` answers.
    pub fn start_with(upstream: &str, opts: GatewayOptions) -> Gateway {
        let port = free_port();
        let dir = work_dir(&format!("gateway-{port}"));
        let log = dir.join("gateway.log");
        let (data_dir, key, verifier) = match &opts.reuse {
            Some(r) => r.clone(),
            None => {
                // A real signing key per gateway, made the way an operator makes one.
                let key = dir.join("ledger.key");
                let keygen = Command::new(gateway_bin())
                    .args(["keygen", "--origin", &format!("test.anchorgate/{port}")])
                    .arg("--out")
                    .arg(&key)
                    .output()
                    .expect("run anchorgate keygen");
                assert!(keygen.status.success(), "keygen: {keygen:?}");
                let verifier = String::from_utf8_lossy(&keygen.stdout).trim().to_owned();
                (dir.join("data"), key, verifier)
            }
        };
        let mut cmd = Command::new(gateway_bin());
        cmd.arg("serve");
        if !opts.args.iter().any(|a| a == "--ephemeral-ledger-key") {
            cmd.arg("--ledger-key-file").arg(&key);
        }
        cmd.arg("--upstream")
            .arg(upstream)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&opts.args)
            .env_remove("ANCHORGATE_PUBLIC_BASE")
            .env("ANCHORGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let path = dir.join("anchorgate.toml");
        std::fs::write(&path, auth_config(opts.config_toml.as_deref())).unwrap();
        cmd.arg("--config").arg(&path);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn anchorgate");
        reap_with_parent(child.id());
        let mut gw = Gateway {
            child,
            port,
            base: format!("http://127.0.0.1:{port}/fhir"),
            log,
            data_dir,
            key_file: key,
            config: (path, upstream.to_owned()),
            verifier,
        };
        let scheme = if opts.https { "https" } else { "http" };
        if !opts.https {
            wait_for_ok(
                &format!("{scheme}://127.0.0.1:{port}/healthz"),
                Duration::from_secs(20),
            );
        } else {
            gw.wait_for_port(Duration::from_secs(20));
        }
        gw
    }

    fn wait_for_port(&mut self, within: Duration) {
        let start = Instant::now();
        while start.elapsed() < within {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gateway exited early with {status}: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway port {} not open within {within:?}", self.port);
    }

    /// One gateway in front of the shared upstream, shared by every test in this process.
    pub fn shared() -> &'static Gateway {
        static GW: OnceLock<Gateway> = OnceLock::new();
        GW.get_or_init(|| Gateway::start(&Upstream::shared().base))
    }

    /// The gateway's root URL (for admin endpoints).
    pub fn root(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `/metrics` exposition text.
    pub fn metrics_text(&self) -> String {
        client()
            .get(format!("{}/metrics", self.root()))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `anchorgate <args>` on this gateway's config, upstream, data directory and key (stopped or not):
    /// its exit code and its stdout and stderr together. They are passed as environment variables,
    /// so each subcommand takes those it has flags for and ignores the rest.
    pub fn command(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(gateway_bin())
            .args(args)
            .env("ANCHORGATE_CONFIG", &self.config.0)
            .env("ANCHORGATE_UPSTREAM", &self.config.1)
            .env("ANCHORGATE_DATA_DIR", &self.data_dir)
            .env("ANCHORGATE_LEDGER_KEY_FILE", &self.key_file)
            .env_remove("ANCHORGATE_LEDGER_KEY")
            .output()
            .expect("run anchorgate");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Options that restart a gateway on this one's ledger (same data directory and key).
    pub fn reuse(&self) -> Option<(PathBuf, PathBuf, String)> {
        Some((
            self.data_dir.clone(),
            self.key_file.clone(),
            self.verifier.clone(),
        ))
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `within` for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The log written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's lines parsed as JSON objects.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        let Ok(f) = std::fs::File::open(&self.log) else {
            return Vec::new();
        };
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python of the test upstream's virtualenv (it has `cryptography`), for independent verifiers.
pub fn venv_python() -> PathBuf {
    let cache = std::env::var_os("ANCHORGATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/anchorgate")
        });
    cache.join("sekmet-venv/bin/python")
}

/// Runs `cmd` to completion: its exit code (-1 when killed) and its stdout and stderr together.
pub fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs the independent Python ledger verifier (`tests/ledger/verify_log.py`).
pub fn python_verify(args: &[&str]) -> (i32, String) {
    run(Command::new(venv_python())
        .arg(repo_root().join("tests/ledger/verify_log.py"))
        .args(args))
}

/// The audience every test gateway is configured with (`identity.audience`), so one token works on all.
pub const AUDIENCE: &str = "https://anchorgate.test/fhir";
/// The test issuer's `iss`.
pub const ISSUER: &str = "https://issuer.anchorgate.test";

/// The test token issuer: an ES256 key and its JWKS, made once per test process with
/// `anchorgate keygen --kind issuer`, as a developer makes one.
#[derive(Debug)]
pub struct Issuer {
    /// The PKCS#8 signing key.
    pub key: PathBuf,
    /// The public JWKS every test gateway trusts.
    pub jwks: PathBuf,
}

/// The process-wide test issuer.
pub fn issuer() -> &'static Issuer {
    static ISS: OnceLock<Issuer> = OnceLock::new();
    ISS.get_or_init(|| {
        let dir = work_dir("issuer");
        let key = dir.join("issuer.pem");
        let jwks = dir.join("issuer.jwks.json");
        let out = Command::new(gateway_bin())
            .args(["keygen", "--kind", "issuer", "--alg", "ES256", "--out"])
            .arg(&key)
            .arg("--jwks-out")
            .arg(&jwks)
            .output()
            .expect("run anchorgate keygen --kind issuer");
        assert!(out.status.success(), "issuer keygen: {out:?}");
        Issuer { key, jwks }
    })
}

/// A token signed by the test issuer with `claims` (iss and aud added unless given), via
/// `anchorgate token`.
pub fn mint(claims: serde_json::Value) -> String {
    let mut claims = claims;
    if claims.get("iss").is_none() {
        claims["iss"] = ISSUER.into();
    }
    if claims.get("aud").is_none() {
        claims["aud"] = AUDIENCE.into();
    }
    let out = Command::new(gateway_bin())
        .arg("token")
        .arg("--issuer-key")
        .arg(&issuer().key)
        .args(["--ttl", "86400", "--claims", &claims.to_string()])
        .output()
        .expect("run anchorgate token");
    assert!(out.status.success(), "token: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The token every test client sends unless it sends its own: a system client of the home
/// organisation with every scope, acting for treatment, and a compliance reviewer.
pub fn superuser_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        mint(serde_json::json!({
            "sub": "test-harness",
            "client_id": "test-harness",
            "scope": "system/*.cruds anchorgate/audit.read",
            "extensions": {"hl7-b2b": {"organization_id": "Organization/org-h1", "purpose_of_use": ["TREAT"]}}
        }))
    })
}

/// The identity and policy settings every test gateway gets (unless its own config sets them): the
/// test issuer, the shared audience, the repository's partner registry, and the opt-out default so
/// that patients without consents stay readable.
pub fn auth_config(own: Option<&str>) -> String {
    let own = own.unwrap_or_default();
    let mut out = own.to_owned();
    if !own.contains("[identity") {
        out.push_str(&format!(
            "\n[identity]\naudience = {AUDIENCE:?}\npartners_file = {:?}\n[[identity.issuers]]\nissuer = {ISSUER:?}\njwks_file = {:?}\n",
            repo_root().join("policies/partners.toml"),
            issuer().jwks
        ));
    }
    if !own.contains("[policy]") {
        out.push_str("\n[policy]\ndefault_policy = \"permit\"\n");
    }
    out
}

/// A blocking HTTP client for tests: no redirects, 30 s timeout, the superuser token.
pub fn client() -> reqwest::blocking::Client {
    client_as(superuser_token())
}

/// A blocking HTTP client sending `token`.
pub fn client_as(token: &str) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// PUTs each resource into the FHIR server at `base` under its own id (fixtures with fixed ids).
pub fn put_resources(base: &str, resources: &[serde_json::Value]) {
    let c = anonymous_client();
    for r in resources {
        put_with(&c, base, r);
    }
}

/// PUTs `resource` through a gateway at `base` as the superuser; asserts it succeeded and answers
/// the response (its leaf index and ETag).
pub fn put_resource(base: &str, resource: &serde_json::Value) -> reqwest::blocking::Response {
    put_with(&client(), base, resource)
}

fn put_with(
    c: &reqwest::blocking::Client,
    base: &str,
    r: &serde_json::Value,
) -> reqwest::blocking::Response {
    let url = format!(
        "{base}/{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    );
    let resp = c
        .put(&url)
        .header("content-type", "application/fhir+json")
        .body(r.to_string())
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "PUT {url}: {}", resp.status());
    resp
}

/// The consent scenarios file (`conformance/consent-scenarios/<name>`).
pub fn consent_scenarios(name: &str) -> serde_json::Value {
    let p = repo_root().join("conformance/consent-scenarios").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// A blocking HTTP client without credentials.
pub fn anonymous_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `POST {base}/{path}` with `body` as `content_type`; the status and the response text.
pub fn post_body(
    base: &str,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::blocking::Body>,
) -> (u16, String) {
    let r = client()
        .post(format!("{base}/{path}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// Sends `GET url` on another thread; join the handle for its status.
pub fn get_in_background(url: String) -> std::thread::JoinHandle<reqwest::StatusCode> {
    std::thread::spawn(move || client().get(url).send().unwrap().status())
}

/// Asserts that `body` is an OperationOutcome (JSON) with an issue of `code`, and returns it.
pub fn assert_outcome(body: &str, code: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(v["resourceType"], "OperationOutcome", "{body}");
    let issue = &v["issue"][0];
    assert_eq!(issue["code"], code, "{body}");
    assert!(
        issue["severity"] == "error" || issue["severity"] == "fatal",
        "{body}"
    );
    assert!(
        issue["diagnostics"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    v
}

/// A misbehaving upstream on a free port, for fault tests: it accepts connections and reads the
/// request head, then answers after `delay` with a small FHIR JSON body, or never when `delay` is `None`.
pub fn faulty_upstream(delay: Option<Duration>) -> u16 {
    answering_upstream(delay, &[r#"{"resourceType":"Patient","id":"slow"}"#])
}

/// An upstream on a free port that answers every request with one of `bodies` as
/// `application/fhir+json` (whatever it holds) after `delay`, or never when `delay` is `None`. The
/// body is `bodies[n]`, `n` the first digit in the request target (0 without one), so one upstream
/// can serve several cases.
pub fn answering_upstream(delay: Option<Duration>, bodies: &'static [&'static str]) -> u16 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let target = seen.split(|b| *b == b' ').nth(1).unwrap_or_default();
                let n = target
                    .iter()
                    .find(|b| b.is_ascii_digit())
                    .map_or(0, |d| usize::from(d - b'0'));
                let body = bodies.get(n).copied().unwrap_or_default();
                match delay {
                    None => std::thread::sleep(Duration::from_secs(3600)),
                    Some(d) => {
                        std::thread::sleep(d);
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                    }
                }
            });
        }
    });
    port
}
