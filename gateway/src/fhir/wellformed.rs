//! Well-formedness of request bodies: JSON and XML syntax, nesting depth, XML's entity hazards, and
//! the structural [`Bounds`] (nodes, attributes per element, Bundle entries), counted as they are read.
//!
//! This is the cheap first gate on the write path; the full FHIR validation builds on it.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use serde::de::DeserializeSeed;
use serde_json::Value;

use super::bounds::{Bounds, TooCostly};
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

/// Why the gate refuses a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// Not well-formed.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// Well-formed so far, but over one of the [`Bounds`].
    #[error(transparent)]
    TooCostly(#[from] TooCostly),
}

/// Checks that `body` is well-formed in `format` and within `bounds`.
pub fn check(format: Format, body: &[u8], bounds: &Bounds) -> Result<(), Refused> {
    check_parsed(format, body, bounds).map(drop)
}

/// [`check`], answering the tree of a JSON body: the check builds it anyway, and the write path uses
/// it rather than parse the body a second time. `None` for XML.
pub fn check_parsed(
    format: Format,
    body: &[u8],
    bounds: &Bounds,
) -> Result<Option<Value>, Refused> {
    match format {
        Format::Json => parse_json(body, bounds).map(Some),
        Format::Xml => check_xml(body, bounds).map(|()| None),
    }
}

/// Checks that `body` is one JSON value, nested at most [`MAX_JSON_DEPTH`] deep, within `bounds`.
pub fn check_json(body: &[u8], bounds: &Bounds) -> Result<(), Refused> {
    parse_json(body, bounds).map(drop)
}

/// Parses `body` as one JSON value, nested at most [`MAX_JSON_DEPTH`] deep, with no member name
/// repeated in any object, at most `bounds.max_nodes` values (counted as they are built) and, at the
/// root of a Bundle, at most `bounds.max_entries` entries.
pub fn parse_json(body: &[u8], bounds: &Bounds) -> Result<Value, Refused> {
    // RFC 8259 §8.1 requires UTF-8; checked up front so the error names the byte, not a token.
    std::str::from_utf8(body).map_err(|e| {
        Malformed(format!(
            "JSON is not valid UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })?;
    let nodes = dup::Nodes::new(bounds.max_nodes);
    let mut de = serde_json::Deserializer::from_slice(body);
    // The tree is built in full, so serde_json's own recursion limit (which is ours) bounds the
    // nesting; the depth is counted only to say where a body went too deep.
    let value = dup::Seed(&nodes)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            if nodes.exceeded() {
                return Refused::from(TooCostly(format!(
                    "the body has more than {} JSON values (limits.max_nodes)",
                    bounds.max_nodes
                )));
            }
            if e.to_string().starts_with("recursion limit exceeded") {
                if let Err(deep) = check_json_depth(body) {
                    return deep.into();
                }
            }
            // serde_json's messages name the problem and position but never echo content.
            Malformed(format!("malformed JSON: {e}")).into()
        })?;
    // Checked on the tree, before anything is done per entry: JSON names its members in any order, so
    // the type that makes `entry` a Bundle's may come after it.
    if value.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        let entries = value
            .get("entry")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Bounds::check(
            entries,
            bounds.max_entries,
            "Bundle entries",
            "max_bundle_entries",
        )?;
    }
    Ok(value)
}

/// A JSON parse that refuses duplicate member names (RFC 8259 §4 leaves them undefined; FHIR JSON
/// forbids them, and "last one wins" would let two readers of one body see different resources),
/// building the tree as it goes and counting its values: checking and parsing used to be two passes
/// over every write.
mod dup {
    use std::cell::Cell;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::map::Entry;
    use serde_json::{Map, Number, Value};

    use crate::fhir::SERDE_NUMBER_TOKEN as NUMBER_TOKEN;

    /// The values still allowed, and whether the count ran out.
    pub struct Nodes {
        left: Cell<usize>,
        exceeded: Cell<bool>,
    }

    impl Nodes {
        pub fn new(max: usize) -> Self {
            Nodes {
                left: Cell::new(max),
                exceeded: Cell::new(false),
            }
        }

        pub fn exceeded(&self) -> bool {
            self.exceeded.get()
        }

        /// Counts one value, failing the parse when none is left.
        fn take<E: de::Error>(&self) -> Result<(), E> {
            match self.left.get().checked_sub(1) {
                Some(n) => {
                    self.left.set(n);
                    Ok(())
                }
                None => {
                    self.exceeded.set(true);
                    Err(E::custom("too many values"))
                }
            }
        }
    }

    /// Any JSON value, checked for duplicate names at every level and counted.
    pub struct Seed<'n>(pub &'n Nodes);

    impl<'de> DeserializeSeed<'de> for Seed<'_> {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(CheckedVisitor(self.0))
        }
    }

    struct CheckedVisitor<'n>(&'n Nodes);

    impl<'de> Visitor<'de> for CheckedVisitor<'_> {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
            self.0.take()?;
            Ok(Value::Bool(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
            self.0.take()?;
            Ok(Value::Number(v.into()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
            self.0.take()?;
            Ok(Value::Number(v.into()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            self.0.take()?;
            Number::from_f64(v)
                .map(Value::Number)
                .ok_or_else(|| E::custom("a number that is not finite"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
            self.0.take()?;
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
            self.0.take()?;
            Ok(Value::String(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
            self.0.take()?;
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            self.0.take()?;
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(v) = seq.next_element_seed(Seed(self.0))? {
                items.push(v);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            self.0.take()?;
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
                        slot.insert(map.next_value_seed(Seed(self.0))?);
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

/// Checks that `body` is one well-formed XML document with no DTD, nested at most [`MAX_XML_DEPTH`]
/// deep, with no attribute repeated on an element, and within `bounds`, in time linear in its size.
///
/// A DOCTYPE is refused outright: FHIR XML never needs one, and it is the door to entity-expansion
/// ("billion laughs") and external-entity attacks.
pub fn check_xml(body: &[u8], bounds: &Bounds) -> Result<(), Refused> {
    read_xml(body, bounds).map(drop)
}

/// What [`read_xml`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    nodes: usize,
    entries: usize,
}

/// [`check_xml`], answering what it counted.
fn read_xml(body: &[u8], bounds: &Bounds) -> Result<Counts, Refused> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Malformed(format!(
            "XML is not valid UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut roots, mut nodes, mut entries) = (0usize, 0usize, 0usize, 0usize);
    let mut bundle = false;
    let mut attrs = Attributes::default();
    loop {
        let pos = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| Malformed(format!("malformed XML at byte {pos}: {e}")))?;
        let element = match &event {
            Event::DocType(_) => {
                return Err(Malformed("XML with a DOCTYPE is not accepted".to_owned()).into());
            }
            Event::Start(e) | Event::Empty(e) => Some(e),
            Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => continue,
            Event::Text(_) if depth == 0 => {
                return Err(Malformed("text outside the root element".to_owned()).into());
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                continue;
            }
            Event::Eof => break,
            _ => None,
        };
        nodes += 1;
        if let Some(e) = element {
            nodes += attrs.check(e, bounds.max_attributes, Some(pos))?;
            match depth {
                0 => bundle = e.local_name().as_ref() == b"Bundle",
                1 if bundle && e.local_name().as_ref() == b"entry" => entries += 1,
                _ => {}
            }
            Bounds::check(
                entries,
                bounds.max_entries,
                "Bundle entries",
                "max_bundle_entries",
            )?;
        }
        Bounds::check(nodes, bounds.max_nodes, "XML nodes", "max_nodes")?;
        match event {
            Event::Start(_) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(Malformed(format!(
                        "XML nested deeper than {MAX_XML_DEPTH} elements"
                    ))
                    .into());
                }
            }
            Event::Empty(_) if depth == 0 => roots += 1,
            _ => {}
        }
    }
    match (roots, depth) {
        (1, 0) => Ok(Counts { nodes, entries }),
        (0, _) => Err(Malformed("XML has no root element".to_owned()).into()),
        (_, 0) => Err(Malformed("XML has more than one root element".to_owned()).into()),
        _ => Err(Malformed("XML ends inside an element".to_owned()).into()),
    }
}

/// Checks the attributes of one element in time linear in their number: no name repeated (XML 1.0
/// §3.1), at most `max` of them; answers how many there are. For XML that did not pass [`check_xml`]
/// (narrative XHTML held in a JSON string).
pub fn check_attributes(e: &BytesStart<'_>, max: usize) -> Result<usize, Refused> {
    Attributes::default().check(e, max, None)
}

/// The attributes of `e` without quick-xml's own duplicate check, which compares each with every
/// earlier one: for readers of elements already checked, or that only look for one attribute.
pub fn attributes<'a>(e: &'a BytesStart<'_>) -> quick_xml::events::attributes::Attributes<'a> {
    let mut all = e.attributes();
    all.with_checks(false);
    all
}

/// The attribute check of [`check_xml`], reused from element to element so it allocates only once.
///
/// quick-xml's own duplicate check compares each attribute with every earlier one: 200,000 attributes
/// on one element cost 34 s in the FHIR XML converter, which uses it. Here each name is hashed once,
/// and the converter only ever sees elements of at most `limits.max_xml_attributes` attributes.
#[derive(Default)]
struct Attributes {
    seen: HashSet<u64>,
    keys: RandomState,
}

impl Attributes {
    /// Checks the attributes of `e` (which starts at byte `pos`, when known) and answers how many it
    /// has.
    fn check(
        &mut self,
        e: &BytesStart<'_>,
        max: usize,
        pos: Option<u64>,
    ) -> Result<usize, Refused> {
        self.seen.clear();
        let at = pos.map_or_else(String::new, |p| format!(" at byte {p}"));
        let mut first = None;
        let mut n = 0;
        for attr in attributes(e) {
            let attr = attr.map_err(|err| {
                Malformed(format!("malformed XML attribute in the tag{at}: {err}"))
            })?;
            n += 1;
            if n > max {
                return Err(TooCostly(format!(
                    "an XML element{at} has more than {max} attributes (limits.max_xml_attributes)"
                ))
                .into());
            }
            let key = attr.key.into_inner();
            // Most FHIR elements carry one attribute: hashing starts with the second.
            match first {
                None => first = Some(key),
                Some(one) => {
                    if n == 2 {
                        self.seen.insert(self.keys.hash_one(one));
                    }
                    // A hash seen before is a repeat unless two names collide, so it is confirmed.
                    if !self.seen.insert(self.keys.hash_one(key)) && repeated(e, key, n) {
                        let name: String = String::from_utf8_lossy(key).chars().take(64).collect();
                        return Err(Malformed(format!(
                            "the attribute \"{name}\" is repeated in the tag{at}"
                        ))
                        .into());
                    }
                }
            }
        }
        Ok(n)
    }
}

/// Whether one of the first `n - 1` attributes of `e` is named `key`.
fn repeated(e: &BytesStart<'_>, key: &[u8], n: usize) -> bool {
    attributes(e)
        .take(n - 1)
        .flatten()
        .any(|a| a.key.as_ref() == key)
}

#[cfg(test)]
mod tests;
