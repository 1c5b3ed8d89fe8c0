//! FHIR primitive values: the JSON type each one must have, and the regex, range and length it must meet.

use std::collections::HashMap;

use regex::bytes::{Regex, RegexBuilder};
use serde_json::Value;

use super::definitions::Definitions;

/// The JSON shape and numeric rules of a primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimKind {
    /// JSON `true`/`false`.
    Boolean,
    /// A JSON number, 32-bit signed.
    Integer,
    /// A JSON number, 1 to 2^31-1.
    PositiveInt,
    /// A JSON number, 0 to 2^31-1.
    UnsignedInt,
    /// A JSON number (any precision).
    Decimal,
    /// A JSON string checked by the primitive's regex.
    Text,
    /// A JSON string holding an XHTML `div`.
    Xhtml,
}

/// One compiled primitive type.
#[derive(Debug)]
pub struct Primitive {
    /// The FHIR type name, e.g. `dateTime`.
    pub name: Box<str>,
    /// Which JSON shape and range it takes.
    pub kind: PrimKind,
    /// The whole-value pattern from the `regex` extension, anchored.
    regex: Option<Regex>,
    /// Longest value in bytes, from `maxLength` on `value` (inherited along `baseDefinition`).
    max_length: Option<usize>,
}

/// Why a primitive value is rejected: a message naming the type, never the value (it may be PHI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimError(pub String);

/// All primitive types by name.
#[derive(Debug, Default)]
pub struct Primitives {
    by_name: HashMap<Box<str>, Primitive>,
}

impl Primitives {
    /// Compiles every `primitive-type` StructureDefinition in `defs`.
    pub fn compile(defs: &Definitions) -> Self {
        let mut by_name = HashMap::new();
        for sd in defs.structures.values() {
            if sd.get("kind").and_then(Value::as_str) != Some("primitive-type") {
                continue;
            }
            let Some(name) = sd.get("type").and_then(Value::as_str) else {
                continue;
            };
            let value = value_element(sd, name);
            let regex = value
                .and_then(|e| e.pointer("/type/0/extension"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|x| {
                    x.get("url").and_then(Value::as_str)
                        == Some("http://hl7.org/fhir/StructureDefinition/regex")
                })
                .find_map(|x| x.get("valueString").and_then(Value::as_str))
                .and_then(compile_regex);
            let kind = match name {
                "boolean" => PrimKind::Boolean,
                "integer" => PrimKind::Integer,
                "positiveInt" => PrimKind::PositiveInt,
                "unsignedInt" => PrimKind::UnsignedInt,
                "decimal" => PrimKind::Decimal,
                "xhtml" => PrimKind::Xhtml,
                _ => PrimKind::Text,
            };
            let max_length = inherited_max_length(defs, sd);
            by_name.insert(
                name.into(),
                Primitive {
                    name: name.into(),
                    kind,
                    regex,
                    max_length,
                },
            );
        }
        Self { by_name }
    }

    /// The primitive called `name`, if it is one.
    pub fn get(&self, name: &str) -> Option<&Primitive> {
        self.by_name.get(name)
    }
}

impl Primitive {
    /// Checks one JSON value (not `null`, not an array) against this type.
    pub fn check(&self, v: &Value) -> Result<(), PrimError> {
        match (self.kind, v) {
            (PrimKind::Boolean, Value::Bool(_)) => Ok(()),
            (
                PrimKind::Integer | PrimKind::PositiveInt | PrimKind::UnsignedInt,
                Value::Number(n),
            ) => self.check_integer(&n.to_string()),
            (PrimKind::Decimal, Value::Number(n)) => self.check_regex(&n.to_string()),
            (PrimKind::Text, Value::String(s)) => {
                self.check_length(s)?;
                self.check_regex(s)
            }
            (PrimKind::Xhtml, Value::String(s)) => super::xhtml::check(s).map_err(PrimError),
            _ => Err(PrimError(format!(
                "a {} must be a JSON {}, not {}",
                self.name,
                self.json_kind(),
                json_kind_of(v)
            ))),
        }
    }

    fn check_integer(&self, text: &str) -> Result<(), PrimError> {
        let bad = || PrimError(format!("the value is not a valid {}", self.name));
        let n: i64 = text.parse().map_err(|_| bad())?;
        let low = match self.kind {
            PrimKind::PositiveInt => 1,
            PrimKind::UnsignedInt => 0,
            _ => i64::from(i32::MIN),
        };
        if n < low || n > i64::from(i32::MAX) {
            return Err(PrimError(format!(
                "the value is outside the range of a {}",
                self.name
            )));
        }
        Ok(())
    }

    fn check_length(&self, s: &str) -> Result<(), PrimError> {
        match self.max_length {
            Some(max) if s.len() > max => Err(PrimError(format!(
                "the value is longer than the permitted maximum length of {max} bytes"
            ))),
            _ => Ok(()),
        }
    }

    fn check_regex(&self, s: &str) -> Result<(), PrimError> {
        if s.is_empty() {
            return Err(PrimError(format!(
                "a {} cannot be empty: leave the property out",
                self.name
            )));
        }
        match &self.regex {
            Some(re) if !re.is_match(s.as_bytes()) => {
                Err(PrimError(format!("the value is not a valid {}", self.name)))
            }
            _ => Ok(()),
        }
    }

    fn json_kind(&self) -> &'static str {
        match self.kind {
            PrimKind::Boolean => "boolean",
            PrimKind::Integer | PrimKind::PositiveInt | PrimKind::UnsignedInt => "number",
            PrimKind::Decimal => "number",
            PrimKind::Text | PrimKind::Xhtml => "string",
        }
    }
}

/// The JSON type name of `v`, for messages.
pub fn json_kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The snapshot element `<type>.value` of a primitive StructureDefinition.
fn value_element<'v>(sd: &'v Value, name: &str) -> Option<&'v Value> {
    let path = format!("{name}.value");
    sd.pointer("/snapshot/element")?
        .as_array()?
        .iter()
        .find(|e| e.get("path").and_then(Value::as_str) == Some(path.as_str()))
}

/// `maxLength` of the `value` element, following `baseDefinition` (`code` gets `string`'s 1 MB).
fn inherited_max_length(defs: &Definitions, sd: &Value) -> Option<usize> {
    let mut cur = sd;
    for _ in 0..8 {
        let name = cur.get("type").and_then(Value::as_str)?;
        if let Some(n) = value_element(cur, name)
            .and_then(|e| e.get("maxLength"))
            .and_then(Value::as_u64)
        {
            return usize::try_from(n).ok();
        }
        let base = cur.get("baseDefinition").and_then(Value::as_str)?;
        cur = defs.structures.get(base)?;
    }
    None
}

/// Anchors a FHIR regex and compiles it with ASCII classes, as XML Schema and Java read `\s` and `\S`.
/// A pattern the engine rejects is dropped (no check), never a reason to refuse resources.
fn compile_regex(pattern: &str) -> Option<Regex> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .unicode(false)
        .build()
        .ok()
}
