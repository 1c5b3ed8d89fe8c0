//! The canonical form of a resource, the bytes that are hashed and anchored: RFC 8785 (JCS) over the FHIR
//! JSON form, minus the fields a server assigns to each version.
//!
//! The rule, exactly (also in `gateway/CANONICAL.md`):
//!
//! 1. Start from the FHIR JSON form; XML is converted first (`fhir::parse`), so both give the same bytes.
//! 2. At the root resource only, remove `meta.versionId`, `meta.lastUpdated` and their `_versionId` and
//!    `_lastUpdated` extension siblings; then remove `meta` if it has no members left. Contained and
//!    Bundle-entry resources are content and keep theirs.
//! 3. Serialise as RFC 8785: no insignificant whitespace, object members sorted by the UTF-16 code units
//!    of their names, strings escaped as ECMAScript's `JSON.stringify` does (`\"`, `\\`, `\b \t \n \f \r`,
//!    other controls as `\u00xx`, everything else as UTF-8).
//! 4. One deliberate difference from RFC 8785: numbers keep their FHIR lexical form (`1.50` stays `1.50`)
//!    instead of being re-serialised as IEEE 754 doubles. FHIR defines a decimal's precision as part of
//!    its value, and JCS's rounding would let `1.50` and `1.5`, or two 20-digit decimals, share a hash.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Members of the root `meta` that the server assigns per version and the anchored hash leaves out.
pub const EXCLUDED_META: &[&str] = &["versionId", "lastUpdated", "_versionId", "_lastUpdated"];

/// The canonical bytes of a resource in FHIR JSON form.
pub fn canonical_bytes(resource: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    match resource {
        Value::Object(root) => write_root(root, &mut out),
        other => write_value(other, &mut out),
    }
    out
}

/// SHA-256 of [`canonical_bytes`].
pub fn canonical_hash(resource: &Value) -> [u8; 32] {
    Sha256::digest(canonical_bytes(resource)).into()
}

/// CANONICAL.md step 0 on a tree: every string value that `relative` answers for is replaced by its
/// answer (see `server::anchor` for the rule that makes a URL under the base relative).
pub fn relativise(v: &mut Value, relative: &dyn Fn(&str) -> Option<String>) {
    match v {
        Value::String(s) => {
            if let Some(rest) = relative(s) {
                *s = rest;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| relativise(i, relative)),
        Value::Object(m) => m.values_mut().for_each(|i| relativise(i, relative)),
        _ => {}
    }
}

fn write_root(root: &Map<String, Value>, out: &mut Vec<u8>) {
    let meta = root.get("meta").and_then(Value::as_object).map(|m| {
        m.iter()
            .filter(|(k, _)| !EXCLUDED_META.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Map<String, Value>>()
    });
    let mut members: Vec<(&String, &Value)> =
        root.iter().filter(|(k, _)| k.as_str() != "meta").collect();
    let meta_value = meta.filter(|m| !m.is_empty()).map(Value::Object);
    let meta_key = "meta".to_owned();
    if let Some(m) = &meta_value {
        members.push((&meta_key, m));
    } else if let Some(other) = root.get("meta").filter(|v| !v.is_object()) {
        members.push((&meta_key, other)); // not an object: kept as it is; validation reports it
    }
    write_members(members, out);
}

fn write_members(mut members: Vec<(&String, &Value)>, out: &mut Vec<u8>) {
    members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push(b'{');
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        write_value(v, out);
    }
    out.push(b'}');
}

fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // With serde_json's `arbitrary_precision` (enabled in this build) this is the lexical form.
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_members(map.iter().collect(), out),
    }
}

/// A JSON string literal escaped as RFC 8785 §3.2.2.2 requires.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x09 => Some(b"\\t"),
            0x0a => Some(b"\\n"),
            0x0c => Some(b"\\f"),
            0x0d => Some(b"\\r"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

pub mod text;

#[cfg(test)]
mod tests;
