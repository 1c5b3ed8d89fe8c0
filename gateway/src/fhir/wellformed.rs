//! Well-formedness of request bodies: JSON and XML syntax, nesting depth, and XML's entity hazards.
//!
//! This is the cheap first gate on the write path; the full FHIR validation builds on it.

use quick_xml::events::Event;
use quick_xml::Reader;

use serde_json::Value;

use super::format::Format;

/// Deepest element nesting accepted in an XML body.
pub const MAX_XML_DEPTH: usize = 128;
/// Deepest object/array nesting accepted in a JSON body (serde_json's own limit: it refuses the 128th
/// level). FHIR resources rarely pass 20.
pub const MAX_JSON_DEPTH: usize = 127;

/// Why a body is not well-formed. The message carries a position, never body content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Checks that `body` is well-formed in `format`.
pub fn check(format: Format, body: &[u8]) -> Result<(), Malformed> {
    check_parsed(format, body).map(drop)
}

/// [`check`], answering the tree of a JSON body: the check builds it anyway, and the write path uses
/// it rather than parse the body a second time. `None` for XML.
pub fn check_parsed(format: Format, body: &[u8]) -> Result<Option<Value>, Malformed> {
    match format {
        Format::Json => parse_json(body).map(Some),
        Format::Xml => check_xml(body).map(|()| None),
    }
}

/// Checks that `body` is one JSON value, nested at most [`MAX_JSON_DEPTH`] deep.
pub fn check_json(body: &[u8]) -> Result<(), Malformed> {
    parse_json(body).map(drop)
}

/// Parses `body` as one JSON value, nested at most [`MAX_JSON_DEPTH`] deep, with no member name
/// repeated in any object.
pub fn parse_json(body: &[u8]) -> Result<Value, Malformed> {
    // RFC 8259 §8.1 requires UTF-8; checked up front so the error names the byte, not a token.
    std::str::from_utf8(body).map_err(|e| {
        Malformed(format!(
            "JSON is not valid UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })?;
    // The tree is built in full, so serde_json's own recursion limit (which is ours) bounds the
    // nesting; the depth is counted only to say where a body went too deep.
    serde_json::from_slice::<dup::Checked>(body)
        .map(|c| c.0)
        .map_err(|e| {
            if e.to_string().starts_with("recursion limit exceeded") {
                if let Err(deep) = check_json_depth(body) {
                    return deep;
                }
            }
            // serde_json's messages name the problem and position but never echo content.
            Malformed(format!("malformed JSON: {e}"))
        })
}

/// A JSON parse that refuses duplicate member names (RFC 8259 §4 leaves them undefined; FHIR JSON
/// forbids them, and "last one wins" would let two readers of one body see different resources),
/// building the tree as it goes: checking and parsing used to be two passes over every write.
mod dup {
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::map::Entry;
    use serde_json::{Map, Number, Value};

    use crate::fhir::SERDE_NUMBER_TOKEN as NUMBER_TOKEN;

    /// Any JSON value, checked for duplicate names at every level.
    pub struct Checked(pub Value);

    impl<'de> Deserialize<'de> for Checked {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(CheckedVisitor).map(Checked)
        }
    }

    struct CheckedVisitor;

    impl<'de> Visitor<'de> for CheckedVisitor {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::Number(v.into()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::Number(v.into()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            Number::from_f64(v)
                .map(Value::Number)
                .ok_or_else(|| E::custom("a number that is not finite"))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(Checked(v)) = seq.next_element::<Checked>()? {
                items.push(v);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(k) = map.next_key::<String>()? {
                if out.is_empty() && k == NUMBER_TOKEN {
                    // A number in its lexical form, as serde_json's own tree reads a first member
                    // of this name.
                    let lexical: String = map.next_value()?;
                    return lexical
                        .parse::<Number>()
                        .map(Value::Number)
                        .map_err(|_| de::Error::custom("invalid number"));
                }
                // One hash per member: the entry is both the check and the slot.
                match out.entry(k) {
                    Entry::Occupied(o) => {
                        let name: String = o.key().chars().take(64).collect();
                        return Err(de::Error::custom(format!(
                            "duplicate member name \"{name}\""
                        )));
                    }
                    Entry::Vacant(slot) => {
                        let Checked(v) = map.next_value()?;
                        slot.insert(v);
                    }
                }
            }
            Ok(Value::Object(out))
        }
    }
}

/// Refuses JSON nested deeper than [`MAX_JSON_DEPTH`].
///
/// Counted in one pass that knows where strings are; syntax is left to the parser.
fn check_json_depth(body: &[u8]) -> Result<(), Malformed> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(Malformed(format!(
                        "JSON nested deeper than {MAX_JSON_DEPTH} levels at byte {i}"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Checks that `body` is one well-formed XML document with no DTD, nested at most [`MAX_XML_DEPTH`] deep.
///
/// A DOCTYPE is refused outright: FHIR XML never needs one, and it is the door to entity-expansion
/// ("billion laughs") and external-entity attacks.
pub fn check_xml(body: &[u8]) -> Result<(), Malformed> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Malformed(format!(
            "XML is not valid UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        let pos = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| Malformed(format!("malformed XML at byte {pos}: {e}")))?;
        match event {
            Event::DocType(_) => {
                return Err(Malformed("XML with a DOCTYPE is not accepted".to_owned()));
            }
            Event::Start(_) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(Malformed(format!(
                        "XML nested deeper than {MAX_XML_DEPTH} elements"
                    )));
                }
            }
            Event::Empty(_) if depth == 0 => roots += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(Malformed("text outside the root element".to_owned()));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match (roots, depth) {
        (1, 0) => Ok(()),
        (0, _) => Err(Malformed("XML has no root element".to_owned())),
        (_, 0) => Err(Malformed("XML has more than one root element".to_owned())),
        _ => Err(Malformed("XML ends inside an element".to_owned())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json() {
        assert!(check_json(br#"{"resourceType":"Patient"}"#).is_ok());
        assert!(check_json(br#"{"resourceType":"Patient""#).is_err());
        assert!(check_json(b"").is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        let err = check_json(deep.as_bytes()).unwrap_err().0;
        assert!(
            err.contains("nested deeper than 127 levels at byte 127"),
            "{err}"
        );
        let at = |n: usize| check_json(("[".repeat(n) + &"]".repeat(n)).as_bytes());
        assert!(at(127).is_ok());
        assert!(at(128)
            .unwrap_err()
            .0
            .contains("nested deeper than 127 levels at byte 127"));
        let huge = "[".repeat(100_000);
        assert!(check_json(huge.as_bytes()).is_err());
        assert!(check_json(b"{\"a\":\"\xff\"}").is_err());
        let dup = check_json(
            br#"{"resourceType":"Patient","active":true,"x":{"a":1,"b":[{"c":1,"c":2}]}}"#,
        );
        assert!(dup.unwrap_err().0.contains("duplicate member name \"c\""));
        assert!(
            check_json(br#"{"a":1,"\u0061":2}"#).is_err(),
            "escaped duplicate"
        );
        assert!(check_json(br#"{"a":{"a":1},"b":{"a":2},"n":1.50e400}"#).is_ok());
        // The tree it builds is serde_json's own, numbers in their lexical form included.
        let text = br#"{"resourceType":"Observation","v":[1.50,-0,1e3,12345678901234567890123],"s":"\u00e9","o":{"$serde_json::private::Number":"x"},"n":null,"b":false}"#;
        let own: Value = serde_json::from_slice(text).unwrap_or(Value::Null);
        match parse_json(text) {
            Ok(v) => assert_eq!(v, own),
            Err(e) => assert!(own.is_null(), "{e}"),
        }
        let plain = br#"{"resourceType":"Observation","v":[1.50,-0,1e3,12345678901234567890123],"s":"\u00e9","n":null,"b":false,"o":{}}"#;
        assert_eq!(
            parse_json(plain).unwrap().to_string(),
            serde_json::from_slice::<Value>(plain).unwrap().to_string()
        );
    }

    #[test]
    fn xml() {
        assert!(check_xml(br#"<?xml version="1.0"?><Patient xmlns="http://hl7.org/fhir"><id value="1"/></Patient>"#).is_ok());
        assert!(check_xml(b"<Patient><id></Patient>").is_err());
        assert!(check_xml(b"<a/><b/>").is_err());
        assert!(check_xml(b"").is_err());
        assert!(check_xml(b"<a>").is_err());
        let laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert_eq!(
            check_xml(laughs),
            Err(Malformed("XML with a DOCTYPE is not accepted".into()))
        );
        let deep = "<a>".repeat(200) + &"</a>".repeat(200);
        assert!(check_xml(deep.as_bytes()).is_err());
    }
}
