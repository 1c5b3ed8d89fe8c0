//! The REST pass-through conformance suite: its checks, the runner comparing upstream and gateway, the API.
//!
//! Each check performs its own steps with data tagged by a per-run nonce, once against the upstream
//! base and once against the gateway base; both transcripts are normalised (base URL, server ids,
//! nonce, instants, the gateway's CapabilityStatement marking) and must be equal. Every raw gateway
//! response (headers and body) must be free of the upstream base.

mod checks_bundle;
mod checks_crud;
mod checks_format;
mod checks_history;
mod checks_ops;
mod checks_search;
pub mod compare;
mod fixtures;
pub mod normalize;
mod report;
mod synthea;
pub mod transcript;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

pub use report::{CheckOutcome, Report, SyntheaReport};
pub use transcript::{Call, Client, Resp, Session, Transcript};

/// Where to run the suite.
#[derive(Debug, Clone)]
pub struct RestOptions {
    /// The upstream FHIR base, e.g. `http://127.0.0.1:8090/fhir`.
    pub upstream_base: String,
    /// The gateway's FHIR base in front of that upstream, e.g. `http://127.0.0.1:8080/fhir`.
    pub gateway_base: String,
    /// Directory of Synthea transaction Bundles to load through the gateway (`None`: skip).
    pub synthea_dir: Option<PathBuf>,
    /// A bearer token sent with every request (the gateway requires one; the upstream ignores it).
    pub bearer_token: Option<String>,
}

/// A check: performs its steps against `base` with data tagged by `nonce`.
pub type CheckFn = fn(&Client, &str, &str) -> Result<Transcript>;

/// A named check.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Short name, unique in the suite.
    pub name: &'static str,
    /// Which representations it exercises: `JSON`, `XML` or `JSON+XML`.
    pub format: &'static str,
    /// The check itself.
    pub run: CheckFn,
}

/// Every check of the suite, in run order.
pub fn checks() -> Vec<Check> {
    let mut all = Vec::new();
    all.extend(checks_crud::checks());
    all.extend(checks_search::checks());
    all.extend(checks_history::checks());
    all.extend(checks_bundle::checks());
    all.extend(checks_ops::checks());
    all.extend(checks_format::checks());
    all
}

/// Runs the whole suite (checks, then Synthea when a directory is given).
pub fn run(opts: &RestOptions) -> Result<Report> {
    let started = Instant::now();
    let opts = RestOptions {
        upstream_base: opts.upstream_base.trim_end_matches('/').to_owned(),
        gateway_base: opts.gateway_base.trim_end_matches('/').to_owned(),
        synthea_dir: opts.synthea_dir.clone(),
        bearer_token: opts.bearer_token.clone(),
    };
    if opts.upstream_base == opts.gateway_base {
        bail!("the upstream and gateway bases are the same URL");
    }
    let client = Client::new(opts.bearer_token.as_deref())?;
    for base in [&opts.upstream_base, &opts.gateway_base] {
        preflight(&client, base)?;
    }
    let markers = compare::leak_markers(&opts.upstream_base);
    let outcomes = checks()
        .iter()
        .map(|c| run_check(&client, c, &opts, &markers))
        .collect();
    let synthea = opts
        .synthea_dir
        .as_deref()
        .map(|dir| synthea::run(&client, &opts, dir, &markers));
    Ok(Report {
        upstream_base: opts.upstream_base.clone(),
        gateway_base: opts.gateway_base.clone(),
        checks: outcomes,
        synthea,
        elapsed: started.elapsed(),
    })
}

fn preflight(client: &Client, base: &str) -> Result<()> {
    let r = client
        .http()
        .get(format!("{base}/metadata"))
        .header("Accept", transcript::FHIR_JSON)
        .send();
    match r {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => bail!("GET {base}/metadata answered {}", r.status()),
        Err(e) => bail!("GET {base}/metadata failed: {e}"),
    }
}

/// Runs one check on both sides and compares.
pub fn run_check(
    client: &Client,
    check: &Check,
    opts: &RestOptions,
    markers: &[String],
) -> CheckOutcome {
    let started = Instant::now();
    let (nu, ng) = (crate::nonce(), crate::nonce());
    let up = (check.run)(client, &opts.upstream_base, &nu);
    let gw = (check.run)(client, &opts.gateway_base, &ng);
    let mut out = CheckOutcome {
        name: check.name.to_owned(),
        format: check.format,
        steps: 0,
        identical: false,
        difference: None,
        leak: None,
        error: None,
        elapsed: Duration::ZERO,
    };
    if let Ok(g) = &gw {
        out.leak = compare::transcript_leak(g, markers);
    }
    match (up, gw) {
        (Err(e), _) => out.error = Some(format!("upstream run failed: {e:#}")),
        (Ok(_), Err(e)) => out.error = Some(format!("gateway run failed: {e:#}")),
        (Ok(u), Ok(g)) => {
            let nu_steps = normalize::normalize_upstream(&u, &opts.upstream_base, &nu);
            let ng_steps = normalize::normalize(&g, &opts.gateway_base, &ng);
            out.steps = nu_steps.len();
            out.difference = compare::first_difference(&nu_steps, &ng_steps);
            out.identical = out.difference.is_none();
        }
    }
    out.elapsed = started.elapsed();
    out
}
