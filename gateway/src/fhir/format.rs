//! FHIR wire formats: recognising media types and negotiating JSON or XML from `_format` and `Accept`.

use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};

/// A FHIR wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `application/fhir+json`.
    Json,
    /// `application/fhir+xml`.
    Xml,
}

/// What a request or response body is, judged from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// A FHIR resource in JSON or XML.
    Fhir(Format),
    /// A JSON Patch document (`application/json-patch+json`).
    JsonPatch,
    /// A form-encoded search (`application/x-www-form-urlencoded`).
    Form,
    /// Anything else, e.g. the raw content of a Binary.
    Other,
    /// No `Content-Type` header at all.
    Missing,
}

impl Format {
    /// The canonical media type with charset, as sent in `Content-Type`.
    pub fn content_type(self) -> HeaderValue {
        match self {
            Format::Json => HeaderValue::from_static("application/fhir+json;charset=utf-8"),
            Format::Xml => HeaderValue::from_static("application/fhir+xml;charset=utf-8"),
        }
    }
}

/// Classifies a media type such as `application/fhir+json; fhirVersion=4.0`.
pub fn classify_media_type(value: &str) -> BodyKind {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        // `application/json+fhir` and `application/xml+fhir` are the DSTU2 names, still sent by old clients.
        "application/fhir+json" | "application/json" | "application/json+fhir" | "text/json" => {
            BodyKind::Fhir(Format::Json)
        }
        "application/fhir+xml" | "application/xml" | "application/xml+fhir" | "text/xml" => {
            BodyKind::Fhir(Format::Xml)
        }
        "application/json-patch+json" => BodyKind::JsonPatch,
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "" => BodyKind::Missing,
        _ => BodyKind::Other,
    }
}

/// Classifies a message body from its headers.
pub fn body_kind(headers: &HeaderMap) -> BodyKind {
    match headers.get(CONTENT_TYPE).map(HeaderValue::to_str) {
        None => BodyKind::Missing,
        Some(Ok(v)) => classify_media_type(v),
        Some(Err(_)) => BodyKind::Other,
    }
}

/// Reads a `_format` value (`json`, `xml`, or a media type).
fn format_param(value: &str) -> Option<Format> {
    match value.trim().to_ascii_lowercase().as_str() {
        "json" => Some(Format::Json),
        "xml" => Some(Format::Xml),
        other => match classify_media_type(other) {
            BodyKind::Fhir(f) => Some(f),
            _ => None,
        },
    }
}

/// The format the client wants answers in: `_format` wins over `Accept` (FHIR R4 §3.1.0.1.7); JSON when
/// neither says.
pub fn negotiate(query: Option<&str>, headers: &HeaderMap) -> Format {
    if let Some(q) = query {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if k == "_format" {
                if let Some(f) = format_param(&v) {
                    return f;
                }
            }
        }
    }
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(preferred_in_accept)
        .unwrap_or(Format::Json)
}

/// Picks JSON or XML from one `Accept` header by its q-values; the earlier entry wins ties.
fn preferred_in_accept(accept: &str) -> Option<Format> {
    let mut best: Option<(Format, f32)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        if let BodyKind::Fhir(f) = classify_media_type(media) {
            if best.is_none_or(|(_, bq)| q > bq) {
                best = Some((f, q));
            }
        }
    }
    best.map(|(f, _)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn format_param_wins_over_accept() {
        assert_eq!(
            negotiate(Some("_format=xml"), &accept("application/fhir+json")),
            Format::Xml
        );
        assert_eq!(
            negotiate(
                Some("a=1&_format=application%2Ffhir%2Bjson"),
                &accept("application/xml")
            ),
            Format::Json
        );
    }

    #[test]
    fn accept_q_values() {
        assert_eq!(
            negotiate(None, &accept("application/fhir+xml")),
            Format::Xml
        );
        assert_eq!(
            negotiate(
                None,
                &accept("application/fhir+json;q=0.5, application/fhir+xml;q=0.9")
            ),
            Format::Xml
        );
        assert_eq!(negotiate(None, &accept("text/html, */*")), Format::Json);
        assert_eq!(negotiate(None, &HeaderMap::new()), Format::Json);
    }

    #[test]
    fn media_types() {
        assert_eq!(
            classify_media_type("application/fhir+json; fhirVersion=4.0"),
            BodyKind::Fhir(Format::Json)
        );
        assert_eq!(classify_media_type("TEXT/XML"), BodyKind::Fhir(Format::Xml));
        assert_eq!(classify_media_type("image/png"), BodyKind::Other);
        assert_eq!(
            classify_media_type("application/json-patch+json"),
            BodyKind::JsonPatch
        );
    }
}
