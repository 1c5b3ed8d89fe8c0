//! Small JSON questions the walk asks: how many values an element has, `_x` twins, absolute URLs,
//! and fixed/pattern matching.

use serde_json::{Map, Value};

use super::model::Node;

/// How many values of element `n` `obj` holds (a `_x`-only primitive counts).
pub fn count(n: &Node, obj: &Map<String, Value>) -> u32 {
    for name in &n.json_names {
        let v = obj.get(&**name).or_else(|| {
            obj.iter()
                .find(|(k, _)| k.strip_prefix('_') == Some(&**name))
                .map(|(_, v)| v)
        });
        match v {
            Some(Value::Array(a)) => return u32::try_from(a.len()).unwrap_or(u32::MAX),
            Some(Value::Null) | None => {}
            Some(_) => return 1,
        }
    }
    0
}

/// Whether `parent["_" + name][i]` is a non-null object (what a `null` in `name[i]` needs).
pub fn ext_at(parent: &Map<String, Value>, name: &str, i: usize) -> bool {
    parent
        .iter()
        .find(|(k, _)| k.strip_prefix('_') == Some(name))
        .and_then(|(_, v)| v.as_array())
        .and_then(|a| a.get(i))
        .is_some_and(Value::is_object)
}

/// `scheme:` at the start, as an absolute URI has.
pub fn is_absolute(url: &str) -> bool {
    match url.split_once(':') {
        Some((scheme, _)) => {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        }
        None => false,
    }
}

/// `fixed[x]`: exact equality (numbers by their text).
pub fn equal(v: &Value, fixed: &Value) -> bool {
    v == fixed
}

/// `pattern[x]`: every property of the pattern is in the value; arrays match item by item, any order.
pub fn contains(v: &Value, pattern: &Value) -> bool {
    match (v, pattern) {
        (Value::Object(o), Value::Object(p)) => p
            .iter()
            .all(|(k, pv)| o.get(k).is_some_and(|ov| contains(ov, pv))),
        (Value::Array(a), Value::Array(p)) => {
            p.iter().all(|pv| a.iter().any(|av| contains(av, pv)))
        }
        _ => v == pattern,
    }
}
