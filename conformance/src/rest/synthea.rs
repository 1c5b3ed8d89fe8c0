//! Synthea: loading the transaction Bundles through the gateway and comparing every created resource.
//! Bundle files may be gzipped (`*.json.gz`, as the repository keeps them in `tests/data/synthea/`).
//!
//! Each resource is read back (a vread of its `entry.response.location`) directly from the upstream
//! and through the gateway; the two must be identical apart from the base URL.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use flate2::read::GzDecoder;
use serde_json::Value;

use super::compare::find_leak;
use super::normalize::BASE;
use super::report::SyntheaReport;
use super::transcript::{snippet, Client, Resp, FHIR_JSON};
use super::RestOptions;

/// How many reads run in parallel (the upstream is one process; a few keep it busy).
const WORKERS: usize = 4;
/// How many mismatches are described in the report (all are counted).
const MAX_DESCRIBED: usize = 20;

/// Loads every usable Bundle file of `dir` through the gateway, then compares the read-backs.
pub fn run(client: &Client, opts: &RestOptions, dir: &Path, markers: &[String]) -> SyntheaReport {
    let mut rep = SyntheaReport {
        dir: dir.display().to_string(),
        selection: "every created resource, vread of its entry.response.location".into(),
        ..SyntheaReport::default()
    };
    let load_started = Instant::now();
    let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => {
            rep.failed_loads
                .push((rep.dir.clone(), format!("cannot read the directory: {e}")));
            return rep;
        }
    };
    files.sort();
    rep.files = files.len();
    let mut paths = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let body = match usable_bundle(f) {
            Ok(b) => b,
            Err(why) => {
                rep.skipped.push((name, why));
                continue;
            }
        };
        match load(client, &opts.gateway_base, body, markers) {
            Ok((locations, leak)) => {
                rep.bundles_loaded += 1;
                if let Some(l) = leak {
                    rep.leaks += 1;
                    mismatch(&mut rep, format!("{name}: transaction response leaks: {l}"));
                }
                for loc in locations {
                    match loc.strip_prefix(&format!("{}/", opts.gateway_base)) {
                        Some(rel) => paths.push(rel.to_owned()),
                        None => mismatch(
                            &mut rep,
                            format!("{name}: location not under the gateway base: {loc}"),
                        ),
                    }
                }
            }
            Err(e) => rep.failed_loads.push((name, e)),
        }
    }
    rep.load_time = load_started.elapsed();
    rep.locations = paths.len();

    let read_started = Instant::now();
    let results = read_back_all(client, opts, &paths, markers);
    for (path, res) in paths.iter().zip(results) {
        rep.resources_read_back += 1;
        if let Err((why, leaked)) = res {
            if leaked {
                rep.leaks += 1;
            }
            mismatch(&mut rep, format!("{path}: {why}"));
        }
    }
    rep.read_time = read_started.elapsed();
    rep
}

fn mismatch(rep: &mut SyntheaReport, text: String) {
    rep.mismatch_count += 1;
    if rep.mismatches.len() < MAX_DESCRIBED {
        rep.mismatches.push(text);
    }
}

/// The file's bytes (gunzipped when its name ends in `.gz`) if it is a transaction or batch Bundle in
/// JSON; otherwise why not.
fn usable_bundle(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut plain = Vec::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut plain)
            .map_err(|e| format!("not gzip: {e}"))?;
        bytes = plain;
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("empty file ({} bytes)", bytes.len()));
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
    let rt = v.get("resourceType").and_then(Value::as_str).unwrap_or("");
    let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
    if rt != "Bundle" || !matches!(ty, "transaction" | "batch") {
        return Err(format!("not a transaction/batch Bundle ({rt} {ty})"));
    }
    Ok(bytes)
}

/// POSTs one Bundle to the gateway; the created locations and any leak in the response.
fn load(
    client: &Client,
    gateway: &str,
    body: Vec<u8>,
    markers: &[String],
) -> Result<(Vec<String>, Option<String>), String> {
    let r = get_or_post(client, gateway, Some(body)).map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!(
            "status {}: {}",
            r.status,
            snippet(&String::from_utf8_lossy(&r.body), 200)
        ));
    }
    let leak = find_leak(&r, markers);
    let v: Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("response not JSON: {e}"))?;
    let locations = super::fixtures::locations_in(&v);
    Ok((locations, leak))
}

fn get_or_post(client: &Client, url: &str, body: Option<Vec<u8>>) -> anyhow::Result<Resp> {
    let method = if body.is_some() { "POST" } else { "GET" };
    let req = match &body {
        Some(b) => client
            .http()
            .post(url)
            .header("Content-Type", FHIR_JSON)
            .body(b.clone()),
        None => client.http().get(url),
    }
    .header("Accept", FHIR_JSON);
    let r = req.send()?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes()?.to_vec();
    Ok(Resp {
        request: format!("{method} {url}"),
        status,
        headers,
        body,
    })
}

type ReadResult = Result<(), (String, bool)>;

/// Reads every path back directly and through the gateway, `WORKERS` at a time; results in order.
fn read_back_all(
    client: &Client,
    opts: &RestOptions,
    paths: &[String],
    markers: &[String],
) -> Vec<ReadResult> {
    let mut results: Vec<Option<ReadResult>> = vec![None; paths.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                scope.spawn(move || {
                    paths
                        .iter()
                        .enumerate()
                        .skip(w)
                        .step_by(WORKERS)
                        .map(|(i, p)| (i, read_back(client, opts, p, markers)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            if let Ok(rs) = h.join() {
                for (i, r) in rs {
                    results[i] = Some(r);
                }
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(("read-back worker panicked".into(), false))))
        .collect()
}

/// Compares one resource read directly and through the gateway.
fn read_back(client: &Client, opts: &RestOptions, path: &str, markers: &[String]) -> ReadResult {
    let fetch = |base: &str| {
        get_or_post(client, &format!("{base}/{path}"), None).map_err(|e| (e.to_string(), false))
    };
    let up = fetch(&opts.upstream_base)?;
    let gw = fetch(&opts.gateway_base)?;
    if let Some(l) = find_leak(&gw, markers) {
        return Err((format!("gateway response leaks: {l}"), true));
    }
    if up.status != 200 || gw.status != 200 {
        return Err((
            format!("status: upstream {}, gateway {}", up.status, gw.status),
            false,
        ));
    }
    for h in ["etag", "last-modified"] {
        if up.header(h) != gw.header(h) {
            return Err((
                format!(
                    "{h}: upstream {:?}, gateway {:?}",
                    up.header(h),
                    gw.header(h)
                ),
                false,
            ));
        }
    }
    let essence = |r: &Resp| {
        r.header("content-type")
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
    };
    if essence(&up) != essence(&gw) {
        return Err((
            format!(
                "content-type: upstream {:?}, gateway {:?}",
                essence(&up),
                essence(&gw)
            ),
            false,
        ));
    }
    let parse = |r: &Resp, base: &str| {
        let text = String::from_utf8_lossy(&r.body).replace(base, BASE);
        serde_json::from_str::<Value>(&text).map_err(|e| (format!("body not JSON: {e}"), false))
    };
    let (a, b) = (
        parse(&up, &opts.upstream_base)?,
        parse(&gw, &opts.gateway_base)?,
    );
    if a != b {
        return Err((
            format!(
                "body differs: upstream {} / gateway {}",
                snippet(&a.to_string(), 120),
                snippet(&b.to_string(), 120)
            ),
            false,
        ));
    }
    Ok(())
}
