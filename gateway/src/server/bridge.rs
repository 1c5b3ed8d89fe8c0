//! Format bridging: the upstream is spoken to in its configured format (JSON or XML) while every client
//! is answered in the format it negotiated, converting bodies both ways.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::HeaderMap;

use crate::config::UpstreamFormat;
use crate::error::GatewayError;
use crate::fhir::format::body_kind;
use crate::fhir::parse::convert;
use crate::fhir::{BodyKind, Format};

/// The fixed upstream format, if one is configured.
pub fn fixed(setting: UpstreamFormat) -> Option<Format> {
    match setting {
        UpstreamFormat::Auto => None,
        UpstreamFormat::Json => Some(Format::Json),
        UpstreamFormat::Xml => Some(Format::Xml),
    }
}

/// Adapts a request for an upstream that speaks `upstream`: the body is re-encoded, `Accept` names the
/// upstream's format, and `_format` is dropped from the query so it cannot override it.
pub fn request(
    upstream: Format,
    headers: &mut HeaderMap,
    query: Option<String>,
    body: Bytes,
    root: &str,
) -> Result<(Option<String>, Bytes), GatewayError> {
    let body = match body_kind(headers) {
        BodyKind::Fhir(from) if from != upstream && !body.is_empty() => {
            let converted =
                convert(from, upstream, &body).map_err(|e| GatewayError::MalformedBody {
                    message: e.to_string(),
                    expression: Some(root.to_owned()),
                })?;
            headers.insert(CONTENT_TYPE, upstream.content_type());
            Bytes::from(converted)
        }
        _ => body,
    };
    headers.insert(ACCEPT, upstream.content_type());
    Ok((query.and_then(|q| without_format(&q)), body))
}

/// `query` without its `_format` parameters, each other parameter kept exactly as written.
fn without_format(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !(p.starts_with("_format=") || *p == "_format"))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// Re-encodes a FHIR response body from the upstream's `format` into the client's, fixing `Content-Type`.
pub fn response(
    format: Format,
    client: Format,
    headers: &mut HeaderMap,
    body: Bytes,
) -> Result<Bytes, GatewayError> {
    if format == client || body.is_empty() {
        return Ok(body);
    }
    let converted = convert(format, client, &body).map_err(|e| {
        GatewayError::UpstreamBadResponse(format!("cannot re-encode the upstream's answer: {e}"))
    })?;
    headers.insert(CONTENT_TYPE, client.content_type());
    Ok(Bytes::from(converted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_parameters_are_dropped_and_others_kept() {
        assert_eq!(
            without_format("a=1&_format=xml&b=%7C"),
            Some("a=1&b=%7C".to_owned())
        );
        assert_eq!(without_format("_format=json"), None);
        assert_eq!(without_format("_formatx=1"), Some("_formatx=1".to_owned()));
    }

    #[test]
    fn request_bodies_are_reencoded() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, Format::Xml.content_type());
        let xml = Bytes::from_static(
            br#"<Patient xmlns="http://hl7.org/fhir"><active value="true"/></Patient>"#,
        );
        let (q, body) = request(
            Format::Json,
            &mut h,
            Some("_format=xml".into()),
            xml,
            "Patient",
        )
        .unwrap();
        assert_eq!(q, None);
        assert_eq!(h[CONTENT_TYPE], Format::Json.content_type());
        assert_eq!(h[ACCEPT], Format::Json.content_type());
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["active"], true);
    }
}
