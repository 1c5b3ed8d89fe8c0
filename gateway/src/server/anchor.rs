//! Anchoring on the write path: after the upstream accepts a write, every resource version it made (or
//! deletion) is committed to the ledger, durably, before the client hears of it.
//!
//! The committed payload is the canonical form (`gateway/CANONICAL.md`) of the resource **as the
//! upstream stored it**: the body it answered with, or, when it answered without one
//! (`Prefer: return=minimal`, an OperationOutcome), the version read back from `Location`.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{CONTENT_LOCATION, ETAG, LOCATION};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use super::readback;
use crate::fhir::canonical::text::{canonical_from_text, Canonical};
use crate::fhir::canonical::{canonical_bytes, relativise};
use crate::fhir::{Format, Interaction, Route};
use crate::ledger::entry::{delete_payload, EntryType};
use crate::ledger::{AnchorRequest, Ledger};
use crate::server::state::Gateway;

/// The response header with the leaf index of each anchored version: one number for a single write;
/// for a batch or transaction, one item per entry in order (`-` where nothing was anchored).
pub const LEAF_HEADER: &str = "x-anchorgate-leaf-index";
/// Set to `failed` when the write reached the upstream but could not be anchored.
pub const ANCHOR_HEADER: &str = "x-anchorgate-anchor";
/// The extension on `Bundle.entry.response` carrying the entry's leaf index.
pub const LEAF_EXTENSION: &str =
    "https://anchorgate.dev/fhir/StructureDefinition/ledger-leaf-index";

/// Whether an interaction writes resource versions that are anchored.
pub fn is_anchored(i: Interaction) -> bool {
    matches!(
        i,
        Interaction::Create
            | Interaction::Update
            | Interaction::ConditionalUpdate
            | Interaction::Patch
            | Interaction::ConditionalPatch
            | Interaction::Delete
            | Interaction::ConditionalDelete
            | Interaction::BatchOrTransaction
    )
}

/// What the write was, as far as anchoring needs to know.
#[derive(Debug)]
pub struct Write<'a> {
    /// The route.
    pub route: &'a Route,
    /// The client's credentials, for read-backs.
    pub auth: Option<HeaderValue>,
    /// The request Bundle of a batch or transaction (FHIR JSON), to pair deletions with entries.
    pub request_bundle: Option<Value>,
    /// Ids a conditional delete matched, resolved before it was forwarded.
    pub deleted_ids: Vec<String>,
}

/// One version (or deletion) to anchor.
#[derive(Debug)]
enum Item {
    /// Canonicalised from the answer's text (a single JSON write: no tree is built).
    Canonical(Canonical),
    Version(Value),
    ReadBack(String),
    Delete {
        rtype: String,
        id: String,
    },
}

/// Anchors what a successful write made; answers a leaf index per item (per Bundle entry for Bundles),
/// or why it could not. `parsed` is the answer's tree, needed for Bundles; a single write's JSON
/// answer is anchored from its `text` instead.
pub async fn anchor_write(
    gw: &Gateway,
    ledger: &Arc<Ledger>,
    w: &Write<'_>,
    headers: &HeaderMap,
    parsed: Option<&Value>,
    text: Option<&str>,
) -> Result<Vec<Option<u64>>, String> {
    let items: Vec<Option<Item>> = match w.route.interaction {
        Interaction::BatchOrTransaction => {
            let resp = parsed.ok_or("the batch/transaction response has no Bundle")?;
            bundle_items(gw, w, resp)
        }
        Interaction::Delete => vec![w.route.id.clone().map(|id| Item::Delete {
            rtype: w.route.resource_type.unwrap_or_default().to_owned(),
            id,
        })],
        Interaction::ConditionalDelete => w
            .deleted_ids
            .iter()
            .map(|id| {
                Some(Item::Delete {
                    rtype: w.route.resource_type.unwrap_or_default().to_owned(),
                    id: id.clone(),
                })
            })
            .collect(),
        _ => vec![Some(single_item(gw, w, headers, parsed, text)?)],
    };
    // Read-backs run concurrently; the entries are then queued in Bundle order, so leaf indices
    // follow the entries, and committed together.
    let prepared = join_all(items.into_iter().map(|item| async move {
        match item {
            None => Ok(None),
            Some(item) => prepare(gw, w, item).await.map(Some),
        }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, String>>()?;
    let slots: Vec<bool> = prepared.iter().map(Option::is_some).collect();
    let reqs: Vec<AnchorRequest> = prepared.into_iter().flatten().collect();
    // Consent versions and deletions also change the consent index, once anchored.
    type ConsentChange = (usize, EntryType, String, Option<String>, Vec<u8>);
    let consent_changes: Vec<ConsentChange> = reqs
        .iter()
        .enumerate()
        .filter_map(|(n, r)| match &r.resource {
            Some((t, id, version)) if t == "Consent" => {
                Some((n, r.kind, id.clone(), version.clone(), r.payload.clone()))
            }
            _ => None,
        })
        .collect();
    let results = ledger.anchor_many(reqs).await.map_err(|e| e.to_string())?;
    for (n, kind, id, version, payload) in consent_changes {
        let Some(Ok(leaf)) = results.get(n) else {
            continue;
        };
        let indexed = match kind {
            EntryType::ConsentVersion => {
                gw.consents.index(payload, version, *leaf).await.map(|_| ())
            }
            _ => gw.consents.remove(&id, *leaf).await,
        };
        if let Err(e) = indexed {
            // The consent is anchored but the index does not show it: the client must know, since
            // a revocation that is not indexed is not in force.
            tracing::error!(consent = %id, error = %e, "consent anchored but NOT indexed");
            gw.metrics.unindexed_consents.inc();
            return Err(format!(
                "the consent was anchored but could not be indexed: {e}"
            ));
        }
    }
    let mut results = results.into_iter();
    slots
        .into_iter()
        .map(|filled| match filled {
            false => Ok(None),
            true => match results.next() {
                Some(Ok(leaf)) => Ok(Some(leaf)),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("the ledger answered fewer entries than asked".into()),
            },
        })
        .collect()
}

/// The version a create, update or patch made: the body, or a read-back of `Location`.
fn single_item(
    gw: &Gateway,
    w: &Write<'_>,
    headers: &HeaderMap,
    parsed: Option<&Value>,
    text: Option<&str>,
) -> Result<Item, String> {
    let base = relative_to(gw.upstream.base());
    if let Some(c) = text
        .and_then(|t| canonical_from_text(t, &base).ok())
        .filter(|c| {
            // As a tree must be to be parsed at all: a non-empty `resourceType`.
            let rtype = c.resource_type.as_deref();
            rtype.is_some_and(|t| !t.is_empty()) && is_stored(rtype, c.id.is_some())
        })
    {
        return Ok(Item::Canonical(c));
    }
    if let Some(v) = parsed.filter(|v| is_stored_resource(v)) {
        return Ok(Item::Version(v.clone()));
    }
    let location = headers
        .get(LOCATION)
        .or_else(|| headers.get(CONTENT_LOCATION))
        .and_then(|v| v.to_str().ok())
        .and_then(|l| relative(gw, l));
    match (location, w.route.resource_type, &w.route.id) {
        (Some(l), _, _) => Ok(Item::ReadBack(l)),
        (None, Some(t), Some(id)) => Ok(Item::ReadBack(format!("{t}/{id}"))),
        _ => Err("the upstream named no stored version (no body, no Location)".into()),
    }
}

/// A resource as stored: not an OperationOutcome, with an id.
fn is_stored_resource(v: &Value) -> bool {
    is_stored(
        v.get("resourceType").and_then(Value::as_str),
        v.get("id").and_then(Value::as_str).is_some(),
    )
}

/// Whether a resource of type `rtype`, with an id or not, is one the upstream stored.
fn is_stored(rtype: Option<&str>, has_id: bool) -> bool {
    rtype != Some("OperationOutcome") && has_id
}

/// A location under the upstream base (or relative), as a path relative to it.
fn relative(gw: &Gateway, location: &str) -> Option<String> {
    let base = gw.upstream.base().as_str().trim_end_matches('/');
    let rest = match location.strip_prefix(base) {
        Some(r) => r.trim_start_matches('/'),
        None if !location.contains("://") => location.trim_start_matches('/'),
        None => return None,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let mut parts = rest.split('/');
    match (parts.next(), parts.next()) {
        (Some(t), Some(id)) if crate::fhir::route::resource_type(t).is_some() && !id.is_empty() => {
            Some(rest.to_owned())
        }
        _ => None,
    }
}

/// Per response entry: the version it made, a read-back, a deletion, or nothing (failed entries).
fn bundle_items(gw: &Gateway, w: &Write<'_>, resp: &Value) -> Vec<Option<Item>> {
    let requests: Vec<&Value> = w
        .request_bundle
        .as_ref()
        .and_then(|b| b.get("entry"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let entries = resp
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let status = e
                .pointer("/response/status")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !status.trim_start().starts_with('2') {
                return None;
            }
            let request = requests.get(i);
            let method = request
                .and_then(|r| r.pointer("/request/method"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            match method {
                "GET" | "HEAD" => None,
                "DELETE" => {
                    let url = request
                        .and_then(|r| r.pointer("/request/url"))
                        .and_then(Value::as_str)?;
                    let rest = relative(gw, url)?;
                    let mut parts = rest.split('/');
                    Some(Item::Delete {
                        rtype: parts.next()?.to_owned(),
                        id: parts.next()?.to_owned(),
                    })
                }
                _ => match e.get("resource").filter(|r| is_stored_resource(r)) {
                    Some(r) => Some(Item::Version(r.clone())),
                    None => e
                        .pointer("/response/location")
                        .and_then(Value::as_str)
                        .and_then(|l| relative(gw, l))
                        .map(Item::ReadBack),
                },
            }
        })
        .collect()
}

/// What to anchor for one item: the tombstone, or the stored version (read back if needed).
async fn prepare(gw: &Gateway, w: &Write<'_>, item: Item) -> Result<AnchorRequest, String> {
    let resource = match item {
        Item::Delete { rtype, id } => {
            return Ok(AnchorRequest {
                kind: EntryType::ResourceDelete,
                payload: delete_payload(&rtype, &id),
                resource: Some((rtype, id, None)),
            });
        }
        Item::Canonical(c) => {
            let rtype = c.resource_type.unwrap_or_default();
            return Ok(AnchorRequest {
                kind: entry_type(&rtype),
                payload: c.bytes,
                resource: Some((rtype, c.id.unwrap_or_default(), c.version)),
            });
        }
        Item::Version(v) => v,
        Item::ReadBack(rest) => {
            let fetched = readback::get(
                gw,
                w.auth.as_ref(),
                &rest,
                None,
                "reading back the stored version",
            )
            .await
            .map_err(|e| e.to_string())?;
            if fetched.status != StatusCode::OK {
                return Err(format!(
                    "reading back the stored version gave {}",
                    fetched.status
                ));
            }
            let version = version_from_etag(&fetched.headers);
            let mut v = fetched
                .value
                .filter(is_stored_resource)
                .ok_or("the read-back is not a stored resource")?;
            if v.pointer("/meta/versionId").is_none() {
                if let (Some(ver), Some(obj)) = (version, v.as_object_mut()) {
                    let meta = obj
                        .entry("meta")
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Some(m) = meta.as_object_mut() {
                        m.insert("versionId".into(), Value::String(ver));
                    }
                }
            }
            v
        }
    };
    let rtype = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let version = resource
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(AnchorRequest {
        kind: entry_type(&rtype),
        payload: anchored_bytes(&resource, gw.upstream.base()),
        resource: Some((rtype, id, version)),
    })
}

/// The payload anchored for a resource read from the FHIR base `base`: its canonical form after every
/// string that is an absolute URL under `base` is made relative to it (CANONICAL.md, step 0). The same
/// version then commits identically whether it was read from the upstream or through any public base
/// of the gateway, which re-homes those URLs.
pub fn anchored_bytes(resource: &Value, base: &url::Url) -> Vec<u8> {
    let mut v = resource.clone();
    relativise(&mut v, &relative_to(base));
    canonical_bytes(&v)
}

/// A version of a Consent is a consent-version entry; of anything else, a resource-version entry.
fn entry_type(rtype: &str) -> EntryType {
    if rtype == "Consent" {
        EntryType::ConsentVersion
    } else {
        EntryType::ResourceVersion
    }
}

/// CANONICAL.md, step 0: what an absolute URL under `base` becomes (`None`: any other string).
fn relative_to(base: &url::Url) -> impl Fn(&str) -> Option<String> {
    let map = crate::filter::BaseMap::new(base, "");
    move |s| {
        map.rewrite(s)
            .map(|rest| rest.strip_prefix('/').map(str::to_owned).unwrap_or(rest))
    }
}

/// `W/"3"` → `3`.
pub fn version_from_etag(headers: &HeaderMap) -> Option<String> {
    let tag = headers.get(ETAG)?.to_str().ok()?;
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    Some(tag.trim_matches('"').to_owned()).filter(|v| !v.is_empty())
}

/// The header value for the anchored leaves.
pub fn leaf_header(leaves: &[Option<u64>], bundle: bool) -> Option<HeaderValue> {
    if !bundle {
        return leaves
            .first()
            .copied()
            .flatten()
            .and_then(|l| HeaderValue::from_str(&l.to_string()).ok());
    }
    let text: Vec<String> = leaves
        .iter()
        .map(|l| l.map_or_else(|| "-".to_owned(), |l| l.to_string()))
        .collect();
    HeaderValue::from_str(&text.join(",")).ok()
}

/// The leaf-index extension in FHIR XML.
pub fn leaf_extension_xml(leaf: u64) -> String {
    match i32::try_from(leaf) {
        Ok(_) => format!(
            "<extension url=\"{LEAF_EXTENSION}\"><valueUnsignedInt value=\"{leaf}\"/></extension>"
        ),
        Err(_) => format!(
            "<extension url=\"{LEAF_EXTENSION}\"><valueString value=\"{leaf}\"/></extension>"
        ),
    }
}

/// Adds the leaf-index extension to each anchored entry's `response` of a Bundle (FHIR JSON form).
pub fn mark_bundle(doc: &mut Value, leaves: &[Option<u64>]) -> bool {
    let Some(entries) = doc.get_mut("entry").and_then(Value::as_array_mut) else {
        return false;
    };
    let mut changed = false;
    for (entry, leaf) in entries.iter_mut().zip(leaves) {
        let (Some(leaf), Some(Value::Object(resp))) = (leaf, entry.get_mut("response")) else {
            continue;
        };
        // unsignedInt holds up to 2^31-1; beyond, the index travels as a string.
        let value = match i32::try_from(*leaf) {
            Ok(_) => serde_json::json!({"url": LEAF_EXTENSION, "valueUnsignedInt": leaf}),
            Err(_) => serde_json::json!({"url": LEAF_EXTENSION, "valueString": leaf.to_string()}),
        };
        match resp
            .entry("extension")
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(list) => list.push(value),
            other => *other = Value::Array(vec![value]),
        }
        changed = true;
    }
    changed
}

/// Adds each entry's leaf index to a batch/transaction response Bundle, changing nothing else: JSON is
/// re-serialised (values, key order and decimals kept); XML gets the extension spliced in after each
/// `<response>` start tag, every other byte kept.
pub fn mark_bundle_body(
    format: Format,
    bytes: &Bytes,
    parsed: Option<Value>,
    leaves: &[Option<u64>],
) -> Option<Bytes> {
    match format {
        Format::Json => {
            let mut doc = parsed?;
            if !mark_bundle(&mut doc, leaves) {
                return None;
            }
            serde_json::to_vec(&doc).ok().map(Bytes::from)
        }
        Format::Xml => {
            let mut entry = None::<usize>;
            crate::filter::xml::edit(bytes, |event, depth| {
                let quick_xml::events::Event::Start(tag) = event else {
                    return None;
                };
                match (depth, tag.local_name().as_ref()) {
                    (1, b"entry") => {
                        entry = Some(entry.map_or(0, |i| i + 1));
                        None
                    }
                    (2, b"response") => {
                        let leaf = leaves.get(entry?).copied().flatten()?;
                        let mut out = b"<".to_vec();
                        out.extend_from_slice(tag);
                        out.extend_from_slice(b">");
                        out.extend_from_slice(leaf_extension_xml(leaf).as_bytes());
                        Some(out)
                    }
                    _ => None,
                }
            })
            .ok()
            .flatten()
            .map(Bytes::from)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn xml_bundles_get_the_extension_and_keep_every_other_byte() {
        let xml = "<?xml version='1.0'?>\n<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"batch-response\"/>\
<entry><resource><Patient><id value=\"1\"/></Patient></resource><response><status value=\"201\"/></response></entry>\
<entry><response><status value=\"200\"/></response></entry>\
<entry><response ><status value=\"201\"/></response></entry></Bundle>";
        let out = mark_bundle_body(
            Format::Xml,
            &Bytes::from(xml),
            None,
            &[Some(7), None, Some(9)],
        )
        .unwrap();
        let text = String::from_utf8(out.to_vec()).unwrap();
        let ext = |n: u64| leaf_extension_xml(n);
        let want = xml
            .replacen(
                "<response><status value=\"201\"/>",
                &format!("<response>{}<status value=\"201\"/>", ext(7)),
                1,
            )
            .replacen(
                "<response ><status",
                &format!("<response >{}<status", ext(9)),
                1,
            );
        assert_eq!(text, want);
    }

    #[test]
    fn json_bundles_get_the_extension() {
        let json = r#"{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}},{"response":{"status":"200 OK","extension":[{"url":"x","valueString":"y"}]}}]}"#;
        let out = mark_bundle_body(
            Format::Json,
            &Bytes::from(json),
            serde_json::from_str(json).ok(),
            &[Some(3), Some(u64::from(u32::MAX))],
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["entry"][0]["response"]["extension"][0]["valueUnsignedInt"],
            3
        );
        assert_eq!(v["entry"][1]["response"]["extension"][0]["url"], "x");
        assert_eq!(
            v["entry"][1]["response"]["extension"][1]["valueString"],
            u32::MAX.to_string()
        );
    }

    #[test]
    fn urls_under_the_base_become_relative() {
        let base = url::Url::parse("http://ehr:8090/fhir").unwrap();
        let a = serde_json::json!({"resourceType": "Patient", "link": [{"other": {"reference": "http://EHR:8090/fhir/Patient/1"}}],
                                   "telecom": [{"value": "http://ehr:8090/fhirx/no"}, {"value": "https://ehr:8090/fhir/Patient/2"}]});
        let b = serde_json::json!({"resourceType": "Patient", "link": [{"other": {"reference": "Patient/1"}}],
                                   "telecom": [{"value": "http://ehr:8090/fhirx/no"}, {"value": "https://ehr:8090/fhir/Patient/2"}]});
        assert_eq!(anchored_bytes(&a, &base), canonical_bytes(&b));
        let public = url::Url::parse("https://gw.example/r4").unwrap();
        let c = serde_json::json!({"resourceType": "Patient", "link": [{"other": {"reference": "https://gw.example/r4/Patient/1"}}],
                                   "telecom": [{"value": "http://ehr:8090/fhirx/no"}, {"value": "https://ehr:8090/fhir/Patient/2"}]});
        assert_eq!(anchored_bytes(&c, &public), anchored_bytes(&a, &base));
    }
}
