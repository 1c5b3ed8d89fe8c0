//! `anchorgate demo`: the whole gateway working in a few minutes, with nothing set up by hand.
//!
//! ```text
//! test EHR (sekmet-fhir, installed on first use) ─▶ keys + throw-away issuer + config in a temp dir
//!   ─▶ `anchorgate serve` (child process) ─▶ Synthea patients and consents written through it
//!   ─▶ the walk-through printed (script.rs) ─▶ Ctrl-C: gateway and EHR stopped, temp dir removed
//! ```

mod ehr;
mod load;
mod script;
mod setup;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use ehr::TestEhr;
use setup::{GatewayChild, Keys};

/// The line after the walk-through; the demo's test reads up to it.
pub(crate) const READY_LINE: &str = "# Ready. Ctrl-C here stops the gateway and the test EHR.";

/// `anchorgate demo` flags.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// The gateway's port (default 8080, or a free port when 8080 is taken).
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// The test EHR's port (default 8090, or a free port when 8090 is taken).
    #[arg(long)]
    pub(crate) ehr_port: Option<u16>,
    /// Where to put the demo's files (keys, config, ledger, logs, the EHR's database): a directory
    /// that does not exist yet or is empty. Default: a new one under the system's temporary directory.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Keep the demo's files when it stops.
    #[arg(long)]
    pub(crate) keep: bool,
}

/// What the demo started, stopped in reverse order however the demo ends.
#[derive(Debug)]
struct Started {
    dir: Option<PathBuf>,
    keep: bool,
    ehr: Option<TestEhr>,
    gateway: Option<GatewayChild>,
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(gw) = &mut self.gateway {
            tracing::info!("anchorgate demo: stopping the gateway");
            gw.stop();
        }
        if let Some(ehr) = &self.ehr {
            tracing::info!("anchorgate demo: stopping the test EHR");
            ehr.stop();
        }
        match (&self.dir, self.keep) {
            (Some(dir), false) => {
                let _ = std::fs::remove_dir_all(dir);
                tracing::info!("anchorgate demo: removed {}", dir.display());
            }
            (Some(dir), true) => tracing::info!("anchorgate demo: kept {}", dir.display()),
            (None, _) => {}
        }
    }
}

/// Runs the demo until Ctrl-C or SIGTERM; exits 1 when something could not start.
pub(crate) fn run(args: &DemoArgs) -> ExitCode {
    let mut started = Started {
        dir: None,
        keep: args.keep,
        ehr: None,
        gateway: None,
    };
    match start(args, &mut started) {
        Ok(()) => {
            wait_for_stop(&mut started);
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("anchorgate demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: &DemoArgs, started: &mut Started) -> Result<(), String> {
    let port = pick_port(args.port, 8080)?;
    let ehr_port = pick_port(args.ehr_port, 8090)?;
    let dir = make_dir(args.dir.as_deref())?;
    started.dir = Some(dir.clone());
    tracing::info!(
        "anchorgate demo: starting the test EHR on port {ehr_port} (the first run installs it from PyPI, about a minute)"
    );
    let ehr = started.ehr.insert(TestEhr::start(&dir, ehr_port)?);
    let ehr_base = ehr.base.clone();
    let keys = Keys::make(&dir)?;
    let config = setup::write_config(&dir, port, &ehr_base)?;
    let root = format!("http://127.0.0.1:{port}");
    tracing::info!("anchorgate demo: starting the gateway on port {port}");
    let gw = started
        .gateway
        .insert(GatewayChild::start(&dir, &config, &root)?);
    let log = gw.log.clone();
    let audience = format!("{root}/fhir");
    let loader = keys.token(
        &audience,
        json!({"sub": "demo-loader", "client_id": "demo-loader", "scope": "system/*.cruds",
               "extensions": {"hl7-b2b": {"organization_id": "Organization/org-h1", "purpose_of_use": ["TREAT"]}}}),
    )?;
    tracing::info!(
        "anchorgate demo: loading three Synthea patients and their consents through the gateway"
    );
    let loaded = load::load(&audience, &loader)?;
    let roles = roles(&keys, &audience)?;
    let ctx = script::Context {
        root: &root,
        ehr: &ehr_base,
        verifier: &keys.verifier,
        patients: &loaded.patients,
        roles: [&roles[0], &roles[1], &roles[2]],
    };
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "{}",
        summary(&root, &ehr_base, &dir, &log, &keys, &loaded)
    );
    let _ = write!(out, "{}", script::render(&ctx));
    let _ = writeln!(out, "\n{READY_LINE}");
    let _ = out.flush();
    Ok(())
}

/// The three roles: a clinician at Hospital One (who may also write), one at Hospital Two, and a
/// compliance reviewer.
fn roles(keys: &Keys, audience: &str) -> Result<[script::Role; 3], String> {
    let b2b = |org: &str| json!({"hl7-b2b": {"organization_id": org, "purpose_of_use": ["TREAT"]}});
    let able = keys.token(
        audience,
        json!({"sub": "Practitioner/prac-a", "fhirUser": "Practitioner/prac-a", "client_id": "ehr-h1",
               "scope": "user/*.cruds", "extensions": b2b("Organization/org-h1")}),
    )?;
    let xavier = keys.token(
        audience,
        json!({"sub": "Practitioner/prac-x", "fhirUser": "Practitioner/prac-x", "client_id": "ehr-h2",
               "scope": "user/*.rs", "extensions": b2b("Organization/org-h2")}),
    )?;
    let reviewer = keys.token(
        audience,
        json!({"sub": "compliance-officer", "client_id": "compliance-console",
               "scope": "anchorgate/audit.read", "extensions": b2b("Organization/org-h1")}),
    )?;
    Ok([
        script::Role {
            var: "ABLE",
            who: "Dr Able, clinician at Hospital One (scope user/*.cruds, purpose TREAT)",
            token: able,
        },
        script::Role {
            var: "XAVIER",
            who: "Dr Xavier, clinician at Hospital Two (scope user/*.rs, purpose TREAT)",
            token: xavier,
        },
        script::Role {
            var: "REVIEWER",
            who: "A compliance reviewer (scope anchorgate/audit.read)",
            token: reviewer,
        },
    ])
}

fn summary(
    root: &str,
    ehr: &str,
    dir: &std::path::Path,
    log: &std::path::Path,
    keys: &Keys,
    loaded: &load::Loaded,
) -> String {
    let mut s = format!(
        "# Anchorgate is running in front of a real FHIR R4 server (the test EHR).\n#\n\
         #   gateway   {root}/fhir   (log: {log})\n\
         #   test EHR  {ehr}   (the upstream: what is sent here directly bypasses Anchorgate)\n\
         #   ledger    {root}/ledger/checkpoint   (verifier key: {verifier})\n\
         #   files     {dir}\n#\n\
         # Written through the gateway: {n} resource versions, each validated and anchored on the ledger.\n\
         # The default policy is opt-in: without a consent that permits it, nothing about a patient leaves.\n",
        log = log.display(),
        verifier = keys.verifier,
        dir = dir.display(),
        n = loaded.anchored,
    );
    for p in &loaded.patients {
        s.push_str(&format!(
            "#   Patient/{}  {:<18} {} Conditions; consent: {}\n",
            p.id, p.name, p.conditions, p.consent
        ));
    }
    s.push_str(
        "#\n# Paste the lines below into another shell. Each request prints its answer, then its HTTP status.\n\n",
    );
    s
}

/// `wanted` if given (it must be free), else `preferred` if free, else any free port.
fn pick_port(wanted: Option<u16>, preferred: u16) -> Result<u16, String> {
    let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).ok();
    if let Some(p) = wanted {
        return free(p)
            .map(|_| p)
            .ok_or_else(|| format!("port {p} is in use"));
    }
    if free(preferred).is_some() {
        return Ok(preferred);
    }
    free(0)
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port())
        .ok_or_else(|| "no free port".to_owned())
}

fn make_dir(wanted: Option<&std::path::Path>) -> Result<PathBuf, String> {
    let dir = match wanted {
        // The demo removes its directory when it stops, so it never takes one that holds anything.
        Some(d) if std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()) => {
            return Err(format!("--dir {}: not empty", d.display()))
        }
        Some(d) => d.to_owned(),
        None => std::env::temp_dir().join(format!(
            "anchorgate-demo-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        )),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // An absolute path, so that what the walk-through prints works from any directory.
    std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Blocks until Ctrl-C or SIGTERM, or until the gateway exits by itself.
fn wait_for_stop(started: &mut Started) {
    let Ok(rt) = crate::common::one_shot_runtime() else {
        return;
    };
    rt.block_on(async {
        let signal = crate::serve::shutdown_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    if started.gateway.as_mut().is_some_and(GatewayChild::exited) {
                        tracing::info!("anchorgate demo: the gateway exited; stopping");
                        return;
                    }
                }
            }
        }
    });
}
