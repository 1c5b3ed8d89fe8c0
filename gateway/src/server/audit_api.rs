//! Compliance endpoints: `/audit/decisions` (JSON, paged), `/audit/decisions/{id}` (with the explanation and the ledger proof), and `[base]/AuditEvent` searches and reads served from the decision records.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::state::Gateway;
use super::verify_op::Receipt;
use crate::audit::{auditevent, query, DecisionRecord};
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::fhir::Format;
use crate::store::decisions;

/// Path prefix of the JSON API.
pub const PREFIX: &str = "/audit/decisions";

fn pairs(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The same query, continuing after record `last`.
fn after(query_string: Option<&str>, last: i64) -> String {
    let mut kept: Vec<(String, String)> = pairs(query_string)
        .into_iter()
        .filter(|(k, _)| k != "after")
        .collect();
    kept.push(("after".into(), last.to_string()));
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

fn bad_param(e: query::BadParam) -> GatewayError {
    GatewayError::bad_request(e.to_string(), Some(e.name))
}

fn json_response(v: &Value) -> Response<Body> {
    let mut r = Response::new(body::full(Bytes::from(
        serde_json::to_vec(v).unwrap_or_default(),
    )));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// How long a reviewer's query waits for the decisions queued before it.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `f` on the decision store once every decision made before the call is stored: decisions
/// are written in batches behind the responses, and a reviewer must see the one just made.
async fn stored<T: Send + 'static>(
    gw: &Gateway,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, GatewayError> {
    // Bounded: a reviewer still gets what is stored when the ledger is slow to take the batch.
    if let Err(e) = gw.enforcer.recorder.flush(FLUSH_WAIT).await {
        // What was written is still worth reading; the writer has logged any failure itself.
        tracing::warn!(error = %e, "decision records queued before this query were not all stored");
    }
    gw.store
        .run(f)
        .await
        .map_err(|e| GatewayError::Internal(e.to_string()))
}

/// One page of stored records matching `q`, with their sequence numbers.
async fn page(
    gw: &Gateway,
    q: decisions::Query,
) -> Result<Vec<(i64, DecisionRecord)>, GatewayError> {
    let rows = stored(gw, move |c| decisions::query(c, &q)).await?;
    rows.into_iter()
        .map(|(seq, s)| {
            serde_json::from_str(&s)
                .map(|r| (seq, r))
                .map_err(|e| GatewayError::Internal(format!("a stored decision record: {e}")))
        })
        .collect()
}

/// `GET /audit/decisions[?filters]` and `GET /audit/decisions/{id}`.
pub async fn decisions_api(
    gw: &Gateway,
    path: &str,
    query_string: Option<&str>,
) -> Result<Response<Body>, GatewayError> {
    let rest = path
        .strip_prefix(PREFIX)
        .unwrap_or_default()
        .trim_matches('/');
    if !rest.is_empty() {
        return one(gw, rest).await;
    }
    let q = query::decisions(&pairs(query_string)).map_err(bad_param)?;
    let limit = q.limit;
    let records = page(gw, q).await?;
    let next = (records.len() as u32 == limit)
        .then(|| records.last().map(|(seq, _)| *seq))
        .flatten()
        .map(|last| format!("{PREFIX}?{}", after(query_string, last)));
    let list: Vec<DecisionRecord> = records.into_iter().map(|(_, r)| r).collect();
    Ok(json_response(&json!({"decisions": list, "next": next})))
}

/// One decision with its explanation and inclusion proof.
async fn one(gw: &Gateway, id: &str) -> Result<Response<Body>, GatewayError> {
    let key = id.to_owned();
    let found = stored(gw, move |c| decisions::get(c, &key)).await?;
    let Some(raw) = found else {
        return Err(GatewayError::NotFound(format!("no decision record {id:?}")));
    };
    let rec: DecisionRecord = serde_json::from_str(&raw)
        .map_err(|e| GatewayError::Internal(format!("a stored decision record: {e}")))?;
    let mut out = json!({"decision": rec, "explanation": explain(&rec)});
    if let (Some(_), Some(ledger)) = (rec.leaf, &gw.ledger) {
        let key = id.to_owned();
        let anchor = ledger.read(move |s| s.find("decision", &key, None)).await?;
        let receipt = match anchor {
            // Erased: nothing links the record any more. Any other failure is the ledger's, and
            // answered as such rather than passed off as a record without proof.
            Some(a) => match Receipt::of(ledger, &a).await {
                Ok(r) => Ok(r),
                Err(GatewayError::NotFound(why)) => Err(why),
                Err(e) => return Err(e),
            },
            None => Err("the ledger holds no anchor for this decision".to_owned()),
        };
        match receipt {
            // Everything a reviewer needs to check the record offline: recompute the commitment from
            // the record (its `leaf` set to null, canonical form) and the salt, compare it with the
            // entry's, hash the entry as a leaf and walk the inclusion proof to the signed checkpoint
            // (LEDGER.md, "Decision receipts"). The salt goes only to reviewers, who see the record.
            Ok(r) => {
                out["proof"] = json!({
                    "leafIndex": r.leaf,
                    "treeSize": r.checkpoint.checkpoint.size,
                    "checkpoint": r.checkpoint.note,
                    "inclusion": r.inclusion.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
                    "entry": B64.encode(r.entry.encode()),
                    "salt": B64.encode(r.salt),
                    "committedSha256": B64.encode(r.canonical_sha256),
                    "receipt": r.proof,
                });
            }
            Err(why) => out["proofUnavailable"] = json!(why),
        }
    }
    Ok(json_response(&out))
}

/// One reason, as a sentence: an engine reason (`policy::decision::Reason`: consent, default policy,
/// organisation policy) or one the enforcement adds (`policy` with a `detail`).
fn explain_reason(r: &Value) -> String {
    let s = |k: &str| r.get(k).and_then(Value::as_str);
    let effect = s("effect").unwrap_or("decided");
    match s("kind") {
        Some("consent") => format!(
            "Consent/{} version {}: provision {} says {effect}.",
            s("consent").unwrap_or("?"),
            s("version").unwrap_or("(unknown)"),
            s("provision").unwrap_or("?"),
        ),
        Some("default-policy") => {
            format!("No active consent applied, so the default policy ({effect}) did.")
        }
        Some("policy") => format!(
            "Organisation policy {} says {effect}{}.",
            s("policy").unwrap_or("?"),
            s("description")
                .or_else(|| s("detail"))
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        _ => r.to_string(),
    }
}

/// A reviewer's reading of a decision, in sentences.
pub fn explain(rec: &DecisionRecord) -> Vec<String> {
    let mut out = vec![format!(
        "{} asked to {} {} for purpose {}; outcome {} (HTTP {}).",
        rec.actor(),
        rec.interaction,
        rec.resource_type.as_deref().unwrap_or("the server"),
        rec.purpose.as_deref().unwrap_or("(none)"),
        rec.outcome,
        rec.status
    )];
    out.extend(rec.reasons.iter().map(explain_reason));
    if rec.withheld > 0 {
        out.push(format!(
            "{} matching resource(s) were withheld.",
            rec.withheld
        ));
    }
    if rec.break_glass {
        out.push("BREAK-GLASS: a deny was overridden; this is a security alert.".into());
    }
    if !rec.tampered_consents.is_empty() {
        out.push(format!(
            "SECURITY: consent(s) {} were ignored because they no longer match the ledger.",
            rec.tampered_consents.join(", ")
        ));
    }
    out
}

/// `GET [base]/AuditEvent?...` (a searchset of AuditEvents) or `GET [base]/AuditEvent/{id}`.
pub async fn audit_events(
    gw: &Gateway,
    public: &str,
    id: Option<&str>,
    query_string: Option<&str>,
    format: Format,
) -> Result<Response<Body>, GatewayError> {
    let source = gw
        .config
        .public_base
        .as_ref()
        .map_or("anchorgate".to_owned(), |u| u.to_string());
    if let Some(id) = id {
        let (decision, _) = id.rsplit_once('-').unwrap_or((id, ""));
        let key = decision.to_owned();
        let raw = stored(gw, move |c| decisions::get(c, &key)).await?;
        let ev = raw
            .and_then(|s| serde_json::from_str::<DecisionRecord>(&s).ok())
            .map(|r| auditevent::events(&r, &source))
            .and_then(|evs| evs.into_iter().find(|e| e["id"] == id));
        return match ev {
            Some(e) => fhir_response(&e, format),
            None => Err(GatewayError::NotFound(format!("AuditEvent/{id}"))),
        };
    }
    let q = query::audit_events(&pairs(query_string)).map_err(bad_param)?;
    let limit = q.limit;
    let records = page(gw, q).await?;
    let mut entries = Vec::new();
    for (_, r) in &records {
        for ev in auditevent::events(r, &source) {
            entries.push(json!({
                "fullUrl": format!("{public}/AuditEvent/{}", ev["id"].as_str().unwrap_or_default()),
                "resource": ev,
                "search": {"mode": "match"},
            }));
        }
    }
    let mut links = vec![
        json!({"relation": "self", "url": format!("{public}/AuditEvent{}", query_string.map(|q| format!("?{q}")).unwrap_or_default())}),
    ];
    if records.len() as u32 == limit {
        if let Some((last, _)) = records.last() {
            let qs = after(query_string, *last);
            links.push(json!({"relation": "next", "url": format!("{public}/AuditEvent?{qs}")}));
        }
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    fhir_response(&bundle, format)
}

fn fhir_response(v: &Value, format: Format) -> Result<Response<Body>, GatewayError> {
    let bytes = match format {
        Format::Json => serde_json::to_vec(v).map_err(|e| GatewayError::Internal(e.to_string()))?,
        Format::Xml => {
            crate::fhir::parse::json_to_xml(v).map_err(|e| GatewayError::Internal(e.to_string()))?
        }
    };
    let mut r = Response::new(body::full(Bytes::from(bytes)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, format.content_type());
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::consent::Effect;
    use crate::policy::decision::{PolicyEffect, Reason};

    #[test]
    fn every_kind_of_reason_reads_as_a_sentence() {
        let reasons = [
            Reason::Consent {
                consent: "c-1".into(),
                version: Some("3".into()),
                provision: "Consent.provision.provision[1]".into(),
                effect: Effect::Deny,
            },
            Reason::DefaultPolicy {
                effect: Effect::Permit,
            },
            Reason::Policy {
                policy: "no-marketing".into(),
                effect: PolicyEffect::Forbid,
                description: Some("marketing is never a purpose here".into()),
            },
        ];
        let rec = DecisionRecord {
            reasons: reasons
                .iter()
                .map(|r| serde_json::to_value(r).unwrap())
                .chain([
                    serde_json::json!({"kind": "policy", "policy": "purpose-required",
                    "effect": "forbid", "detail": "a request must name its purpose"}),
                ])
                .collect(),
            ..DecisionRecord::default()
        };
        let text = explain(&rec);
        assert_eq!(
            &text[1..],
            [
                "Consent/c-1 version 3: provision Consent.provision.provision[1] says deny.",
                "No active consent applied, so the default policy (permit) did.",
                "Organisation policy no-marketing says forbid: marketing is never a purpose here.",
                "Organisation policy purpose-required says forbid: a request must name its purpose.",
            ]
        );
    }
}
