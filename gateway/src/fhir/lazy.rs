//! Borrowed, shallow parsing of FHIR JSON: an object's members as raw text, parsed only where asked.
//!
//! Filtering a search answer used to parse the whole Bundle into a tree and print it back: for a
//! 50-entry page that was over half of the gateway's CPU, nearly all of it building maps nobody
//! read. Here the Bundle and each entry are split into members without allocating for their values
//! (serde_json still checks every byte is well-formed JSON, within its nesting limit), only the
//! members a decision reads are parsed, and the answer is written back from the original text.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A JSON object's members in document order, each value still raw text borrowed from the input.
#[derive(Debug)]
pub struct RawObject<'a> {
    /// Name and raw value of each member. Names with escapes fail to borrow, and the whole parse
    /// fails: callers fall back to a full parse (FHIR element names are plain ASCII).
    pub members: Vec<(&'a str, &'a RawValue)>,
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<&'de str, &'de RawValue>()? {
                    members.push((k, v));
                }
                Ok(RawObject { members })
            }
        }
        d.deserialize_map(Members)
    }
}

impl<'a> RawObject<'a> {
    /// Splits `text` (one JSON object) into members.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The raw value of the last member called `name` (the last, as a full parse would keep).
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }

    /// The member `name` when it is a string without escapes.
    pub fn str(&self, name: &str) -> Option<&'a str> {
        self.get(name)
            .and_then(|v| serde_json::from_str::<&'a str>(v.get()).ok())
    }

    /// An object holding only the members `keep` admits, each parsed in full.
    pub fn partial(&self, keep: impl Fn(&str) -> bool) -> Result<Value, serde_json::Error> {
        let mut out = Map::new();
        for (k, v) in &self.members {
            if keep(k) {
                out.insert((*k).to_owned(), serde_json::from_str(v.get())?);
            }
        }
        Ok(Value::Object(out))
    }

    /// Every member parsed: the object a full parse of the same text gives.
    pub fn full(&self) -> Result<Value, serde_json::Error> {
        self.partial(|_| true)
    }
}

/// Writes `"name":` (escaped as JSON requires) to `out`.
pub fn write_name(out: &mut Vec<u8>, name: &str) {
    // A &str always serialises.
    let _ = serde_json::to_writer(&mut *out, name);
    out.push(b':');
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_in_order_and_partial_values() {
        let text = r#"{"resourceType":"Observation","id":"o1","text":{"div":"<div>big</div>"},
            "subject":{"reference":"Patient/p"},"code":{"text":"x"}}"#;
        let o = RawObject::parse(text).unwrap();
        let names: Vec<&str> = o.members.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["resourceType", "id", "text", "subject", "code"]);
        assert_eq!(o.str("id"), Some("o1"));
        assert_eq!(o.str("subject"), None);
        let p = o.partial(|k| k != "text").unwrap();
        assert_eq!(
            p,
            json!({"resourceType": "Observation", "id": "o1",
                "subject": {"reference": "Patient/p"}, "code": {"text": "x"}})
        );
        assert_eq!(
            o.full().unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn malformed_or_escaped_input_is_refused() {
        assert!(RawObject::parse(r#"{"a":1,"b":}"#).is_err());
        assert!(RawObject::parse(r#"[1]"#).is_err());
        assert!(RawObject::parse(r#"{"\u0061":1}"#).is_err());
        // Skipping a member does not recurse (no stack to exhaust); parsing it does, within
        // serde_json's nesting limit.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let o = RawObject::parse(&deep).unwrap();
        assert!(o.full().is_err(), "nesting stays bounded when parsed");
    }

    #[test]
    fn duplicate_members_resolve_as_a_full_parse_does() {
        let o = RawObject::parse(r#"{"id":"a","id":"b"}"#).unwrap();
        assert_eq!(o.str("id"), Some("b"));
        assert_eq!(o.full().unwrap(), json!({"id": "b"}));
    }

    #[test]
    fn names_are_escaped_when_written() {
        let mut out = Vec::new();
        write_name(&mut out, "a\"b");
        assert_eq!(out, br#""a\"b":"#);
    }
}
