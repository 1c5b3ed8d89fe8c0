//! Reading FHIR JSON and XML into one representation (FHIR JSON as a `serde_json::Value`), and writing
//! XML from it.
//!
//! XML goes through `fhirbolt`'s generic element model, which knows FHIR's types (which elements repeat,
//! which primitives are numbers or booleans, where `_element` extensions go). `fhirbolt` is unmaintained
//! and panics on some inputs, so every call into it is isolated with `catch_unwind` and the input is
//! checked for well-formedness, depth and DTDs first: a panic becomes a parse error, never a crash.

use std::panic::{catch_unwind, AssertUnwindSafe};

use fhirbolt::element::Element;
use fhirbolt::FhirReleases;
use serde_json::Value;

use super::bounds::Bounds;
use super::format::Format;
use super::wellformed::Refused;
use super::{narrative, wellformed};

/// The R4 generic element.
type R4Element = Element<{ FhirReleases::R4 }>;

/// Why a body is not a FHIR resource. Messages carry positions and element names, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not well-formed JSON or XML, or over the nesting limits.
    #[error("{0}")]
    Malformed(String),
    /// Well-formed, but not a FHIR resource (no `resourceType`, not an object, unknown structure).
    #[error("{0}")]
    NotAResource(String),
    /// Over one of the structural [`Bounds`] (here only attributes per XML element).
    #[error("{0}")]
    TooCostly(String),
}

impl From<Refused> for ParseError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Malformed(m) => ParseError::Malformed(m.0),
            Refused::TooCostly(t) => ParseError::TooCostly(t.0),
        }
    }
}

/// Parses a FHIR resource in `format` into its FHIR JSON form, within [`Bounds::converter`].
pub fn parse(format: Format, bytes: &[u8]) -> Result<Value, ParseError> {
    wellformed::check(format, bytes, &Bounds::converter())?;
    parse_wellformed(format, bytes)
}

/// [`parse`] for a body that has already passed [`wellformed::check`] (the write path checks every body
/// before anything else), without walking it again.
pub fn parse_wellformed(format: Format, bytes: &[u8]) -> Result<Value, ParseError> {
    let value = match format {
        Format::Json => serde_json::from_slice(bytes)
            .map_err(|e| ParseError::Malformed(format!("malformed JSON: {e}")))?,
        Format::Xml => wellformed_xml_to_json(bytes)?,
    };
    as_resource(value)
}

/// The resource `bytes` hold: `parsed`, its tree when the request filter already built it, or else
/// parsed now, with the same checks either way.
pub fn resource_from(
    parsed: Option<Value>,
    format: Format,
    bytes: &[u8],
) -> Result<Value, ParseError> {
    match parsed {
        Some(v) => as_resource(v),
        None => parse_wellformed(format, bytes),
    }
}

/// `value` if it is a FHIR resource in JSON form (see [`is_resource`]).
fn as_resource(value: Value) -> Result<Value, ParseError> {
    is_resource(&value).map(|()| value)
}

/// Whether `value` is a FHIR resource in JSON form: an object with a non-empty `resourceType`.
pub fn is_resource(value: &Value) -> Result<(), ParseError> {
    match value.get("resourceType") {
        Some(Value::String(t)) if !t.is_empty() => Ok(()),
        _ if !value.is_object() => Err(ParseError::NotAResource(
            "a FHIR resource is a JSON object".into(),
        )),
        _ => Err(ParseError::NotAResource(
            "the resource has no resourceType".into(),
        )),
    }
}

/// Converts a FHIR XML resource to its FHIR JSON form, within [`Bounds::converter`].
pub fn xml_to_json(bytes: &[u8]) -> Result<Value, ParseError> {
    wellformed::check_xml(bytes, &Bounds::converter())?;
    wellformed_xml_to_json(bytes)
}

/// [`xml_to_json`] for a document that has already passed [`wellformed::check_xml`].
fn wellformed_xml_to_json(bytes: &[u8]) -> Result<Value, ParseError> {
    let body = without_declaration(bytes);
    let mut value = isolate(|| {
        let element: R4Element = fhirbolt::xml::from_slice(body, None)
            .map_err(|e| ParseError::NotAResource(format!("not FHIR XML: {e}")))?;
        fhirbolt::json::to_json_value(element, None)
            .map_err(|e| ParseError::NotAResource(format!("cannot convert to JSON: {e}")))
    })?;
    // fhirbolt trims whitespace inside narrative XHTML ("Weight <b>" becomes "Weight<b>"); put the
    // narratives back exactly as written.
    let raw: Vec<&[u8]> = narrative::spans(bytes)
        .into_iter()
        .map(|(a, b)| &bytes[a..b])
        .collect();
    let mut divs = narrative::json_divs(&mut value);
    if divs.len() == raw.len() {
        for (div, raw) in divs.iter_mut().zip(raw) {
            if let Ok(text) = std::str::from_utf8(raw) {
                **div = text.to_owned();
            }
        }
    } else {
        tracing::debug!("narrative count differs between XML and JSON; kept the converter's text");
    }
    Ok(value)
}

/// The document without a byte-order mark or XML declaration.
///
/// `well-formedness` has already required UTF-8, and fhirbolt refuses declarations that spell the
/// encoding in lowercase (`encoding='utf-8'`, which XML 1.0 §4.3.3 allows and real servers send).
fn without_declaration(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let trimmed = bytes.trim_ascii_start();
    match trimmed.strip_prefix(b"<?xml") {
        Some(rest) if rest.first().is_some_and(u8::is_ascii_whitespace) => {
            memchr::memmem::find(rest, b"?>").map_or(bytes, |end| &rest[end + 2..])
        }
        _ => bytes,
    }
}

/// Writes a resource in FHIR JSON form as FHIR XML.
pub fn serialize(format: Format, value: &Value) -> Result<Vec<u8>, ParseError> {
    match format {
        Format::Json => Ok(serde_json::to_vec(value).unwrap_or_default()),
        Format::Xml => json_to_xml(value),
    }
}

/// A FHIR JSON value as FHIR XML.
pub fn json_to_xml(value: &Value) -> Result<Vec<u8>, ParseError> {
    isolate(|| {
        let element: R4Element = fhirbolt::json::from_json_value(value.clone(), None)
            .map_err(|e| ParseError::NotAResource(format!("not a FHIR resource: {e}")))?;
        fhirbolt::xml::to_vec(&element, None)
            .map_err(|e| ParseError::NotAResource(format!("cannot write XML: {e}")))
    })
    .map(|xml| restore_xml_narratives(xml, value))
}

/// Replaces the (whitespace-trimmed) narratives fhirbolt wrote with the JSON's own, in document order.
fn restore_xml_narratives(xml: Vec<u8>, value: &Value) -> Vec<u8> {
    let mut copy = value.clone();
    let divs = narrative::json_divs(&mut copy);
    let spans = narrative::spans(&xml);
    if divs.len() != spans.len() {
        return xml;
    }
    let mut splice = crate::filter::splice::Splice::new(&xml);
    for ((start, end), div) in spans.into_iter().zip(divs) {
        splice.replace(start, end, div.as_bytes());
    }
    splice.finish().unwrap_or(xml)
}

/// Re-encodes a FHIR body from one format to the other (a copy when they are the same).
pub fn convert(from: Format, to: Format, bytes: &[u8]) -> Result<Vec<u8>, ParseError> {
    if from == to {
        return Ok(bytes.to_vec());
    }
    let value = parse(from, bytes)?;
    match to {
        Format::Json => {
            serde_json::to_vec(&value).map_err(|e| ParseError::NotAResource(e.to_string()))
        }
        Format::Xml => json_to_xml(&value),
    }
}

/// Runs a `fhirbolt` call, turning a panic into an error.
fn isolate<T>(f: impl FnOnce() -> Result<T, ParseError>) -> Result<T, ParseError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::warn!("the FHIR XML converter panicked on an input; refused as not a resource");
        Err(ParseError::NotAResource(
            "the resource could not be read".into(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><active value="true"/><name><family value="Chalmers"/><given value="Peter"/><given value="James"/></name><birthDate value="1974-12-25"><extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime"><valueDateTime value="1974-12-25T14:35:45-05:00"/></extension></birthDate></Patient>"#;

    #[test]
    fn xml_becomes_fhir_json() {
        let v = parse(Format::Xml, XML.as_bytes()).unwrap();
        assert_eq!(v["resourceType"], "Patient");
        assert_eq!(v["active"], true);
        assert_eq!(v["name"][0]["given"][1], "James");
        assert_eq!(
            v["_birthDate"]["extension"][0]["valueDateTime"],
            "1974-12-25T14:35:45-05:00"
        );
        let back = json_to_xml(&v).unwrap();
        assert_eq!(parse(Format::Xml, &back).unwrap(), v);
    }

    #[test]
    fn lowercase_encoding_declarations_and_boms_are_read() {
        let doc = format!("\u{feff}<?xml version='1.0' encoding='utf-8'?>\n{XML}");
        assert_eq!(
            parse(Format::Xml, doc.as_bytes()).unwrap()["name"][0]["family"],
            "Chalmers"
        );
    }

    #[test]
    fn converts_both_ways() {
        let json = convert(Format::Xml, Format::Json, XML.as_bytes()).unwrap();
        let xml = convert(Format::Json, Format::Xml, &json).unwrap();
        assert_eq!(
            parse(Format::Xml, &xml).unwrap(),
            parse(Format::Json, &json).unwrap()
        );
        assert!(convert(Format::Json, Format::Xml, b"{\"a\":1}").is_err());
    }

    #[test]
    fn decimals_keep_their_precision() {
        let v = parse(
            Format::Xml,
            br#"<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="x"/></code><valueQuantity><value value="1.50"/></valueQuantity></Observation>"#,
        )
        .unwrap();
        assert_eq!(v["valueQuantity"]["value"].to_string(), "1.50");
    }

    #[test]
    fn refusals_are_errors_not_panics() {
        for bad in [
            &b"<Patient xmlns=\"http://hl7.org/fhir\"><coding/></Patient>"[..],
            b"<Patient xmlns=\"http://hl7.org/fhir\"><name><given/></name></Patient>",
            b"<Nope xmlns=\"http://hl7.org/fhir\"/>",
            b"<Patient/>",
            b"<Patient xmlns=\"http://hl7.org/fhir\"><birthDate/></Patient>",
            b"<Bundle xmlns=\"http://hl7.org/fhir\"><entry><resource/></entry></Bundle>",
            b"<Bundle xmlns=\"http://hl7.org/fhir\"><entry><resource><Patient><id value=\"1\"/></Patient><Patient/></resource></entry></Bundle>",
        ] {
            let _ = parse(Format::Xml, bad); // must return, whatever it returns
        }
        assert!(matches!(
            parse(Format::Json, b"[1]"),
            Err(ParseError::NotAResource(_))
        ));
        assert!(matches!(
            parse(Format::Json, b"{\"a\":1}"),
            Err(ParseError::NotAResource(_))
        ));
        assert!(matches!(
            parse(Format::Json, b"{"),
            Err(ParseError::Malformed(_))
        ));
        let coding_empty =
            serde_json::json!({"resourceType": "Observation", "code": {"coding": []}});
        let _ = json_to_xml(&coding_empty);
    }
}
