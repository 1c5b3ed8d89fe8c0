//! Reading FHIR `Parameters` (and the `part`s of a parameter): find one by name, take its `value[x]`.

use serde_json::Value;

/// The parameter (or part) called `name` among `items`.
pub fn named<'v>(items: &'v [Value], name: &str) -> Option<&'v Value> {
    items
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
}

/// The `parameter` (or `part`) list of `v`, empty when it has none.
pub fn list<'v>(v: &'v Value, key: &str) -> &'v [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The string in a parameter's `value[x]` (`valueCode`, `valueString`, `valueCanonical`, …), if any.
pub fn value_text(p: &Value) -> Option<&str> {
    p.as_object()?
        .iter()
        .find(|(k, _)| k.starts_with("value"))
        .and_then(|(_, v)| v.as_str())
}
