//! `$verify` and `$receipt`, answered by the gateway from its ledger.
//!
//! `$verify` (`[type]/[id]/$verify`, `[type]/[id]/_history/[vid]/$verify`) reads the upstream's
//! current content with the client's own credentials (so it is authorised exactly as a read is),
//! recomputes the commitment with the stored salt, and says `intact`, `tampered`, `unanchored` or
//! `deleted`, with the leaf index, the checkpoint and the inclusion proof. `$receipt`
//! (`[type]/[id]/_history/[vid]/$receipt`) gives a c2sp.org/tlog-proof for one anchored version, with
//! what is needed to recompute its commitment offline.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::anchor::{anchored_bytes, version_from_etag};
use super::{enforce, readback};
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::fhir::parse::json_to_xml;
use crate::fhir::route::RouteError;
use crate::fhir::{Format, Route};
use crate::ledger::entry::{self, Entry, EntryType};
use crate::ledger::hash::Hash;
use crate::ledger::source::StoreTiles;
use crate::ledger::store::Anchor;
use crate::ledger::{proof, Ledger, SignedCheckpoint};
use crate::server::state::Gateway;

/// Whether this route is one of the ledger's operations.
pub fn is_ledger_op(route: &Route) -> bool {
    matches!(route.operation.as_deref(), Some("verify" | "receipt")) && route.id.is_some()
}

/// The four answers of `$verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The upstream's content is what was anchored.
    Intact,
    /// The upstream's content differs from what was anchored, or it changed without the gateway.
    Tampered,
    /// Nothing was anchored for it (or its salts were erased).
    Unanchored,
    /// It was deleted through the gateway, and the upstream agrees.
    Deleted,
}

impl Verdict {
    fn code(self) -> &'static str {
        match self {
            Verdict::Intact => "intact",
            Verdict::Tampered => "tampered",
            Verdict::Unanchored => "unanchored",
            Verdict::Deleted => "deleted",
        }
    }
}

/// Answers `$verify` or `$receipt`.
pub async fn handle(
    gw: &Gateway,
    parts: &Parts,
    route: &Route,
    format: Format,
    guard: Option<&mut enforce::Guard>,
) -> Result<Response<Body>, GatewayError> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(RouteError::MethodNotAllowed {
            method: parts.method.clone(),
            allowed: "GET, HEAD",
        }
        .into());
    }
    let ledger = gw
        .ledger
        .clone()
        .ok_or_else(|| GatewayError::NotFound("the ledger is disabled on this gateway".into()))?;
    let rtype = route.resource_type.unwrap_or_default();
    let id = route.id.clone().unwrap_or_default();
    // Read first, with the client's credentials: the operation is authorised as the read is, and a
    // resource the client may not read is answered exactly as the read would be.
    let rest = match &route.version {
        Some(v) => format!("{rtype}/{id}/_history/{v}"),
        None => format!("{rtype}/{id}"),
    };
    let mut current = readback::get(
        gw,
        parts.headers.get(AUTHORIZATION),
        &rest,
        None,
        "reading the resource to verify",
    )
    .await?;
    if matches!(
        current.status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) {
        return Err(GatewayError::Forbidden(format!(
            "the upstream refused the read ({})",
            current.status
        )));
    }
    // The consent decides as it would for the read itself: a resource the principal may not see is
    // answered 404 (or 403), and neither its verdict nor its receipt leaks that it exists.
    if let (Some(g), Some(doc)) = (guard, current.value.as_mut()) {
        enforce::judge_read(gw, g, doc).await?;
    }
    let params = if route.operation.as_deref() == Some("receipt") {
        receipt(&ledger, rtype, &id, route.version.as_deref()).await?
    } else {
        verify(&ledger, gw.upstream.base(), route, rtype, &id, current).await?
    };
    let bytes = match format {
        Format::Json => serde_json::to_vec(&params).unwrap_or_default(),
        Format::Xml => json_to_xml(&params).map_err(|e| GatewayError::Internal(e.to_string()))?,
    };
    let mut resp = Response::new(body::full(bytes));
    resp.headers_mut()
        .insert(CONTENT_TYPE, format.content_type());
    Ok(resp)
}

async fn verify(
    ledger: &Arc<Ledger>,
    base: &url::Url,
    route: &Route,
    rtype: &str,
    id: &str,
    current: readback::Fetched,
) -> Result<Value, GatewayError> {
    let upstream_version = current
        .value
        .as_ref()
        .and_then(|v| v.pointer("/meta/versionId"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| version_from_etag(&current.headers));
    let gone = matches!(current.status, StatusCode::NOT_FOUND | StatusCode::GONE);
    let content = current
        .value
        .filter(|v| v.get("resourceType").and_then(Value::as_str) == Some(rtype));
    let (t, i) = (rtype.to_owned(), id.to_owned());
    let asked = route.version.clone();
    let latest = ledger
        .read(move |s| s.find(&t, &i, asked.as_deref()))
        .await?;
    let mut out = Vec::new();
    let Some(anchor) = latest else {
        out.push(result(Verdict::Unanchored, "nothing was anchored for it"));
        return Ok(parameters(out));
    };
    if anchor.erased {
        out.push(result(
            Verdict::Unanchored,
            "erased: its salts were deleted",
        ));
        out.push(json!({"name": "leafIndex", "valueString": anchor.leaf.to_string()}));
        return Ok(parameters(out));
    }
    let entry = entry_of(ledger, anchor.leaf).await?;
    let (verdict, why) = if anchor.kind == EntryType::ResourceDelete as u8 {
        match content {
            None if gone => (
                Verdict::Deleted,
                "deleted through the gateway; the upstream agrees".to_owned(),
            ),
            _ => (
                Verdict::Tampered,
                "deleted through the gateway, yet the upstream still serves it".to_owned(),
            ),
        }
    } else {
        match content {
            None => (
                Verdict::Tampered,
                format!("anchored, but the upstream answers {}", current.status),
            ),
            Some(v) => {
                let same_version = route.version.is_some()
                    || anchor.version.is_none()
                    || anchor.version == upstream_version;
                let matches = anchor.salt.is_some_and(|salt| {
                    entry::commitment(
                        EntryType::from_code(anchor.kind).unwrap_or(EntryType::ResourceVersion),
                        &salt,
                        &anchored_bytes(&v, base),
                    ) == entry.commitment
                });
                match (same_version, matches) {
                    (true, true) => (Verdict::Intact, "the upstream's content matches its commitment".to_owned()),
                    (true, false) => (Verdict::Tampered, "the upstream's content does not match what was anchored".to_owned()),
                    (false, _) => (Verdict::Tampered, format!(
                        "the upstream's current version {} was not written through the gateway (last anchored: {})",
                        upstream_version.as_deref().unwrap_or("?"),
                        anchor.version.as_deref().unwrap_or("?")
                    )),
                }
            }
        }
    };
    out.push(result(verdict, &why));
    out.push(json!({"name": "leafIndex", "valueString": anchor.leaf.to_string()}));
    out.push(json!({"name": "entryType", "valueCode": entry.kind.name()}));
    if let Some(v) = &anchor.version {
        out.push(json!({"name": "anchoredVersion", "valueString": v}));
    }
    if let Some(v) = &upstream_version {
        out.push(json!({"name": "upstreamVersion", "valueString": v}));
    }
    let (cp, path) = proof_for(ledger, anchor.leaf).await?;
    out.push(json!({"name": "checkpoint", "valueString": cp.note}));
    out.push(json!({"name": "inclusionProof", "part": proof_parts(&cp, &path)}));
    Ok(parameters(out))
}

/// What proves one anchored entry offline: the entry, its salt, the canonical payload's SHA-256, a
/// checkpoint covering it and the c2sp.org/tlog-proof text that carries all of them.
#[derive(Debug)]
pub(crate) struct Receipt {
    pub leaf: u64,
    pub entry: Entry,
    pub salt: [u8; 32],
    pub canonical_sha256: Hash,
    pub checkpoint: Arc<SignedCheckpoint>,
    /// The inclusion proof in `checkpoint`.
    pub inclusion: Vec<Hash>,
    /// The c2sp.org/tlog-proof, `extra` = entry (42 bytes) ‖ salt (32 bytes) (LEDGER.md, "Receipts").
    pub proof: String,
}

impl Receipt {
    /// The receipt of `anchor`; 404 once its salt was erased, since nothing can link it any more.
    pub(crate) async fn of(ledger: &Arc<Ledger>, anchor: &Anchor) -> Result<Self, GatewayError> {
        let (Some(salt), Some(canonical_sha256)) = (anchor.salt, anchor.canonical_sha256) else {
            return Err(GatewayError::NotFound(
                "this entry's anchor was erased: no receipt can link it any more".into(),
            ));
        };
        let entry = entry_of(ledger, anchor.leaf).await?;
        let (checkpoint, path) = proof_for(ledger, anchor.leaf).await?;
        let mut extra = entry.encode().to_vec();
        extra.extend_from_slice(&salt);
        let mut proof = format!(
            "c2sp.org/tlog-proof@v1\nextra {}\nindex {}\n",
            B64.encode(&extra),
            anchor.leaf
        );
        for h in &path {
            proof.push_str(&B64.encode(h));
            proof.push('\n');
        }
        proof.push('\n');
        proof.push_str(&checkpoint.note);
        Ok(Receipt {
            leaf: anchor.leaf,
            entry,
            salt,
            canonical_sha256,
            checkpoint,
            inclusion: path,
            proof,
        })
    }
}

/// The receipt of one anchored version, or (without `version`) of the latest entry anchored for the
/// resource, which may be its deletion.
async fn receipt(
    ledger: &Arc<Ledger>,
    rtype: &str,
    id: &str,
    version: Option<&str>,
) -> Result<Value, GatewayError> {
    let (t, i, v) = (rtype.to_owned(), id.to_owned(), version.map(str::to_owned));
    let anchor: Anchor = ledger
        .read(move |s| s.find(&t, &i, v.as_deref()))
        .await?
        .ok_or_else(|| {
            GatewayError::NotFound(match version {
                Some(v) => {
                    format!("version {v} of {rtype}/{id} was not anchored through this gateway")
                }
                None => format!("nothing was anchored for {rtype}/{id}"),
            })
        })?;
    let r = Receipt::of(ledger, &anchor).await?;
    Ok(parameters(vec![
        json!({"name": "proof", "valueString": r.proof}),
        json!({"name": "leafIndex", "valueString": r.leaf.to_string()}),
        json!({"name": "entryType", "valueCode": r.entry.kind.name()}),
        json!({"name": "entry", "valueBase64Binary": B64.encode(r.entry.encode())}),
        json!({"name": "salt", "valueBase64Binary": B64.encode(r.salt)}),
        json!({"name": "canonicalSha256", "valueBase64Binary": B64.encode(r.canonical_sha256)}),
        json!({"name": "checkpoint", "valueString": r.checkpoint.note}),
    ]))
}

fn parameters(parameter: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": parameter})
}

fn result(v: Verdict, why: &str) -> Value {
    json!({"name": "result", "valueCode": v.code(), "part": [{"name": "reason", "valueString": why}]})
}

async fn entry_of(ledger: &Arc<Ledger>, leaf: u64) -> Result<Entry, GatewayError> {
    let raw = ledger.read(move |s| s.entries(leaf, 1)).await?;
    let bytes = raw
        .first()
        .ok_or_else(|| GatewayError::Internal(format!("leaf {leaf} is anchored but missing")))?;
    Entry::decode(bytes).map_err(|e| GatewayError::Internal(format!("leaf {leaf}: {e}")))
}

/// A checkpoint covering `leaf` (signing one now if the latest does not yet) and the leaf's
/// inclusion proof in it.
pub(crate) async fn proof_for(
    ledger: &Arc<Ledger>,
    leaf: u64,
) -> Result<(Arc<SignedCheckpoint>, Vec<Hash>), GatewayError> {
    let covered = |l: &Ledger| l.checkpoint().filter(|c| c.checkpoint.size > leaf);
    let cp = match covered(ledger) {
        Some(cp) => cp,
        None => {
            let l = ledger.clone();
            tokio::task::spawn_blocking(move || l.sign_pending())
                .await
                .map_err(|e| GatewayError::Internal(e.to_string()))??;
            covered(ledger).ok_or_else(|| {
                GatewayError::LedgerUnavailable("no checkpoint covers this entry yet".into())
            })?
        }
    };
    let size = cp.checkpoint.size;
    let path = ledger
        .read(move |s| proof::inclusion(&StoreTiles::new(s), leaf, size))
        .await?
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
    Ok((cp, path))
}

fn proof_parts(cp: &SignedCheckpoint, path: &[Hash]) -> Vec<Value> {
    let mut parts = vec![
        json!({"name": "treeSize", "valueString": cp.checkpoint.size.to_string()}),
        json!({"name": "rootHash", "valueBase64Binary": B64.encode(cp.checkpoint.root)}),
    ];
    parts.extend(
        path.iter()
            .map(|h| json!({"name": "hash", "valueBase64Binary": B64.encode(h)})),
    );
    parts
}
