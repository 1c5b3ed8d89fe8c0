//! The demo gateway: its keys, a throw-away token issuer, its configuration, and the `serve` child
//! process that runs it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anchorgate::identity::keys::{self, IssuerKey};
use anchorgate::identity::SigAlg;
use anchorgate::ledger::note::NoteSigner;
use serde_json::Value;

/// The demo issuer's `iss`: `.invalid` (RFC 6761) so it can never be mistaken for a real one.
pub(crate) const ISSUER: &str = "https://demo-issuer.anchorgate.invalid";
/// The log's origin line.
const ORIGIN: &str = "demo.anchorgate.invalid/ledger";
/// Demo tokens live for a working day.
const TOKEN_TTL_SECS: u64 = 8 * 3600;
/// The shipped partner registry, written beside the config so that the demo never depends on the
/// working directory.
const PARTNERS: &str = include_str!("../../../../../policies/partners.toml");

/// What the demo made: the issuer key (to mint tokens), and the ledger's verifier key.
#[derive(Debug)]
pub(crate) struct Keys {
    issuer: IssuerKey,
    kid: String,
    /// The ledger's verifier key, `name+keyid+base64`.
    pub(crate) verifier: String,
}

impl Keys {
    /// Makes a ledger key and an issuer key under `dir`.
    pub(crate) fn make(dir: &Path) -> Result<Self, String> {
        let signer = NoteSigner::generate(ORIGIN).map_err(|e| e.to_string())?;
        crate::keys::write_new(
            &dir.join("ledger.key"),
            &format!("{}\n", signer.encode()),
            0o600,
        )
        .map_err(|e| format!("ledger.key: {e}"))?;
        let (issuer, pem) = IssuerKey::generate(SigAlg::ES256).map_err(|e| e.to_string())?;
        let kid = issuer.thumbprint();
        crate::keys::write_new(&dir.join("issuer.pem"), &pem, 0o600)
            .map_err(|e| format!("issuer.pem: {e}"))?;
        crate::keys::write_new(
            &dir.join("issuer.jwks.json"),
            &format!("{:#}\n", issuer.jwks(&kid)),
            0o644,
        )
        .map_err(|e| format!("issuer.jwks.json: {e}"))?;
        Ok(Self {
            issuer,
            kid,
            verifier: signer.verifier().encode(),
        })
    }

    /// A token for `claims` (the issuer, audience, times and a `jti` are added).
    pub(crate) fn token(&self, audience: &str, mut claims: Value) -> Result<String, String> {
        claims["iss"] = ISSUER.into();
        claims["aud"] = audience.into();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        keys::mint(&self.issuer, Some(&self.kid), claims, TOKEN_TTL_SECS, now)
            .map_err(|e| e.to_string())
    }
}

/// Writes `anchorgate.toml` (and the partner registry it names) under `dir`; answers its path.
pub(crate) fn write_config(dir: &Path, port: u16, upstream: &str) -> Result<PathBuf, String> {
    let partners = dir.join("partners.toml");
    std::fs::write(&partners, PARTNERS).map_err(|e| format!("partners.toml: {e}"))?;
    // Absolute paths, whatever rule resolves relative ones: the file is read from `dir` only by us.
    let abs = |name: &str| format!("{:?}", dir.join(name).display().to_string());
    let text = format!(
        "# Written by `anchorgate demo`; removed when it stops (unless --keep).\n\
         listen = \"127.0.0.1:{port}\"\n\
         upstream = {upstream:?}\n\
         data_dir = {data}\n\
         \n[log]\nformat = \"json\"\n\
         \n[ledger]\nkey_file = {key}\n\
         \n[identity]\naudience = \"http://127.0.0.1:{port}/fhir\"\npartners_file = {partners}\n\
         \n[[identity.issuers]]\nissuer = {ISSUER:?}\njwks_file = {jwks}\n\
         \n[policy]\n# Opt-in: a patient's data leaves only under a consent that permits it.\n\
         default_policy = \"deny\"\n",
        data = abs("data"),
        key = abs("ledger.key"),
        partners = abs("partners.toml"),
        jwks = abs("issuer.jwks.json"),
    );
    let path = dir.join("anchorgate.toml");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The gateway, run as `anchorgate serve` in a child process whose log goes to `gateway.log`.
#[derive(Debug)]
pub(crate) struct GatewayChild {
    child: Child,
    /// Its log file.
    pub(crate) log: PathBuf,
}

impl GatewayChild {
    /// Starts `serve --config CONFIG` and waits until `/readyz` answers 200.
    pub(crate) fn start(dir: &Path, config: &Path, root: &str) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let log = dir.join("gateway.log");
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(exe)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start the gateway: {e}"))?;
        let mut gw = Self { child, log };
        gw.wait_ready(root, Duration::from_secs(60))?;
        Ok(gw)
    }

    fn wait_ready(&mut self, root: &str, within: Duration) -> Result<(), String> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the gateway exited ({status}); its log: {}",
                    self.log.display()
                ));
            }
            let ready = http
                .get(format!("{root}/readyz"))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if start.elapsed() > within {
                return Err(format!(
                    "the gateway was not ready within {}s; its log: {}",
                    within.as_secs(),
                    self.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether it has exited.
    pub(crate) fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops it gracefully (SIGTERM: drain, flush the decision records, sign a last checkpoint), and
    /// kills it if it has not exited within 15 s.
    pub(crate) fn stop(&mut self) {
        if self.exited() {
            return;
        }
        // std can only SIGKILL a child; `kill` sends the SIGTERM that triggers a graceful stop.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
