//! The ledger's read API under `/ledger/`: the signed checkpoint, c2sp tlog-tiles (hash tiles and entry
//! bundles) and RFC 9162 proofs as JSON. None of it holds personal data, so it needs no credentials.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Response};

use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::fhir::RouteError;
use crate::ledger::hash::{self, Hash};
use crate::ledger::source::StoreTiles;
use crate::ledger::tile::TileId;
use crate::ledger::{proof, Ledger};
use crate::server::state::Gateway;

/// The path prefix of the log (c2sp tlog-tiles' `<prefix>`).
pub const PREFIX: &str = "/ledger/";

/// Answers a `/ledger/...` path, or `None` when `path` is not under it.
pub async fn handle(
    gw: &Gateway,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Option<Result<Response<Body>, GatewayError>> {
    let rest = path.strip_prefix(PREFIX)?;
    if method != Method::GET && method != Method::HEAD {
        return Some(Err(GatewayError::Route(RouteError::MethodNotAllowed {
            method: method.clone(),
            allowed: "GET, HEAD",
        })));
    }
    let Some(ledger) = gw.ledger.clone() else {
        return Some(Err(GatewayError::NotFound(
            "the ledger is disabled on this gateway".into(),
        )));
    };
    Some(match rest {
        "checkpoint" => checkpoint(&ledger),
        "proof/inclusion" => inclusion(&ledger, query).await,
        "proof/consistency" => consistency(&ledger, query).await,
        r if r.starts_with("tile/") => tile(&ledger, r).await,
        _ => Err(GatewayError::NotFound(format!(
            "no ledger endpoint at {path}; see {PREFIX}checkpoint, {PREFIX}tile/..., {PREFIX}proof/inclusion, {PREFIX}proof/consistency"
        ))),
    })
}

fn respond(content_type: &'static str, cache: &'static str, bytes: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(body::full(bytes));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

fn checkpoint(ledger: &Ledger) -> Result<Response<Body>, GatewayError> {
    let cp = ledger
        .checkpoint()
        .ok_or_else(|| GatewayError::NotFound("no checkpoint has been signed yet".into()))?;
    // Clients poll it; it changes every signing interval.
    Ok(respond(
        "text/plain; charset=utf-8",
        "no-cache",
        cp.note.clone().into_bytes(),
    ))
}

/// Tiles never change once they exist (a partial tile is a prefix of the full one), so they are
/// cacheable forever, as tlog-tiles intends.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

async fn tile(ledger: &Arc<Ledger>, rest: &str) -> Result<Response<Body>, GatewayError> {
    let id = TileId::parse(rest).ok_or_else(|| {
        GatewayError::bad_request(
            format!("{rest:?} is not a c2sp tlog-tiles path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>])"),
            None,
        )
    })?;
    let data = ledger.read(move |s| s.tile_data(&id)).await?;
    let data =
        data.ok_or_else(|| GatewayError::NotFound(format!("{} does not exist (yet)", id.path())))?;
    Ok(respond("application/octet-stream", IMMUTABLE, data))
}

/// A `u64` query parameter; `None` when absent.
fn param(query: Option<&str>, name: &'static str) -> Result<Option<u64>, GatewayError> {
    let Some(q) = query else { return Ok(None) };
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        if k == name {
            return v.parse().map(Some).map_err(|_| {
                GatewayError::bad_request(
                    format!("{name} must be a non-negative integer"),
                    Some(name.to_owned()),
                )
            });
        }
    }
    Ok(None)
}

fn required(query: Option<&str>, name: &'static str) -> Result<u64, GatewayError> {
    param(query, name)?.ok_or_else(|| {
        GatewayError::bad_request(
            format!("the {name} parameter is required"),
            Some(name.to_owned()),
        )
    })
}

/// The tree size a proof is asked at: `default` (the latest checkpoint) when absent; never beyond
/// what is durable.
fn tree_size(ledger: &Ledger, asked: Option<u64>, name: &'static str) -> Result<u64, GatewayError> {
    let size = match asked {
        Some(n) => n,
        None => ledger
            .checkpoint()
            .map(|c| c.checkpoint.size)
            .ok_or_else(|| GatewayError::NotFound("no checkpoint has been signed yet".into()))?,
    };
    if size > ledger.size() {
        return Err(GatewayError::bad_request(
            format!(
                "{name} {size} is larger than the log ({} entries)",
                ledger.size()
            ),
            Some(name.to_owned()),
        ));
    }
    Ok(size)
}

fn b64_list(hashes: &[Hash]) -> Vec<serde_json::Value> {
    hashes.iter().map(|h| B64.encode(h).into()).collect()
}

fn json(value: &serde_json::Value) -> Response<Body> {
    respond(
        "application/json",
        IMMUTABLE,
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

async fn inclusion(
    ledger: &Arc<Ledger>,
    query: Option<&str>,
) -> Result<Response<Body>, GatewayError> {
    let index = required(query, "index")?;
    let size = tree_size(ledger, param(query, "size")?, "size")?;
    let (proof, root) = ledger
        .read(move |s| {
            let tiles = StoreTiles::new(s);
            let proof = proof::inclusion(&tiles, index, size)?;
            let root = hash::root(&tiles, size)?;
            Ok((proof, root))
        })
        .await?;
    let proof =
        proof.map_err(|e| GatewayError::bad_request(e.to_string(), Some("index".into())))?;
    Ok(json(&serde_json::json!({
        "index": index,
        "size": size,
        "root": B64.encode(root),
        "hashes": b64_list(&proof),
    })))
}

async fn consistency(
    ledger: &Arc<Ledger>,
    query: Option<&str>,
) -> Result<Response<Body>, GatewayError> {
    let old = required(query, "old")?;
    let new = tree_size(ledger, param(query, "new")?, "new")?;
    let (proof, old_root, new_root) = ledger
        .read(move |s| {
            let tiles = StoreTiles::new(s);
            let proof = proof::consistency(&tiles, old, new)?;
            let old_root = hash::root(&tiles, old.min(new))?;
            let new_root = hash::root(&tiles, new)?;
            Ok((proof, old_root, new_root))
        })
        .await?;
    let proof = proof.map_err(|e| GatewayError::bad_request(e.to_string(), Some("old".into())))?;
    Ok(json(&serde_json::json!({
        "old": old,
        "new": new,
        "old_root": B64.encode(old_root),
        "new_root": B64.encode(new_root),
        "hashes": b64_list(&proof),
    })))
}
