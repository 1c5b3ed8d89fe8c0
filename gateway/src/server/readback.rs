//! Reads from the upstream on the gateway's own account of a request: the current version before a
//! PATCH, a stored version after a write answered without a body, the current content for `$verify`.
//! Each read carries the client's own credentials: it must never see more than the client may.

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;

use super::bridge;
use crate::body::{self, CollectError};
use crate::error::GatewayError;
use crate::fhir::format::body_kind;
use crate::fhir::parse::parse;
use crate::fhir::{BodyKind, Format};
use crate::server::state::Gateway;

/// An upstream answer to a GET.
#[derive(Debug)]
pub struct Fetched {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body in FHIR JSON form, when it had a FHIR body.
    pub value: Option<Value>,
}

/// The entries of a searchset Bundle that are matches (not `search.mode = outcome` issues).
pub fn matches(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e.pointer("/search/mode").and_then(Value::as_str) != Some("outcome"))
}

/// GETs `rest?query` (relative to the upstream base) with `auth` as the client's credentials.
pub async fn get(
    gw: &Gateway,
    auth: Option<&HeaderValue>,
    rest: &str,
    query: Option<&str>,
    what: &str,
) -> Result<Fetched, GatewayError> {
    let format = bridge::fixed(gw.config.upstream_format).unwrap_or(Format::Json);
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, format.content_type());
    if let Some(auth) = auth {
        headers.insert(AUTHORIZATION, auth.clone());
    }
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.method_mut() = Method::GET;
    *req.uri_mut() = gw.upstream.uri_for(rest, query)?;
    *req.headers_mut() = headers;
    let resp = gw.upstream.send(req).await?;
    let (parts, body) = resp.into_parts();
    let bytes = body::collect(
        body,
        gw.config.limits.max_response_body,
        gw.config.timeouts.upstream_body(),
    )
    .await
    .map_err(|e| match e {
        CollectError::Timeout(d) => GatewayError::UpstreamTimeout(d.as_millis()),
        e => GatewayError::UpstreamBadResponse(format!("{what}: {e:?}")),
    })?;
    let value = match body_kind(&parts.headers) {
        BodyKind::Fhir(f) if !bytes.is_empty() => Some(parse(f, &bytes).map_err(|e| {
            GatewayError::UpstreamBadResponse(format!("{what}: the answer is not FHIR: {e}"))
        })?),
        _ => None,
    };
    Ok(Fetched {
        status: parts.status,
        headers: parts.headers,
        value,
    })
}
