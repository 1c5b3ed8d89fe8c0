//! Code membership for the value sets that profiles bind with `required` strength, including value sets
//! loaded at run time: taken from their expansion, or expanded here when the `compose` is simple
//! (enumerated concepts, whole code systems that are loaded, imported value sets).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::definitions::{strip_version, Definitions};
use super::terminology::Membership;

/// (system, code) pairs.
type Codes = HashSet<(Box<str>, Box<str>)>;

/// Closed code lists by value set URL.
#[derive(Debug, Default)]
pub struct ValueSets {
    sets: HashMap<Box<str>, Codes>,
}

impl ValueSets {
    /// Expands each of `wanted` that `defs` can expand exactly.
    pub fn build<'a>(defs: &Definitions, wanted: impl Iterator<Item = &'a str>) -> Self {
        let mut out = Self::default();
        for url in wanted {
            if out.sets.contains_key(url) {
                continue;
            }
            if let Some(codes) = expand(defs, url, 0) {
                out.sets.insert(url.into(), codes);
            }
        }
        out
    }

    /// Whether `code` (of `system`, when known) is in value set `url`; `Unknown` when not expanded here.
    pub fn member(&self, url: &str, system: Option<&str>, code: &str) -> Membership {
        let Some(set) = self.sets.get(url) else {
            return Membership::Unknown;
        };
        let found = set
            .iter()
            .any(|(s, c)| &**c == code && system.is_none_or(|sys| &**s == sys));
        if found {
            Membership::In
        } else {
            Membership::NotIn
        }
    }
}

fn expand(defs: &Definitions, url: &str, depth: u32) -> Option<Codes> {
    let vs = defs.value_sets.get(strip_version(url))?;
    if depth > 8 {
        return None;
    }
    let mut out = HashSet::new();
    if let Some(exp) = vs.get("expansion") {
        let open = exp
            .get("extension")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if open {
            return None;
        }
        flatten(exp.get("contains"), &mut out);
        return (!out.is_empty()).then_some(out);
    }
    let compose = vs.get("compose")?;
    for inc in compose.get("include")?.as_array()? {
        if inc.get("filter").is_some() {
            return None;
        }
        let system = inc.get("system").and_then(Value::as_str);
        let mut part: Codes = HashSet::new();
        match (system, inc.get("concept").and_then(Value::as_array)) {
            (Some(s), Some(concepts)) => {
                for c in concepts {
                    if let Some(code) = c.get("code").and_then(Value::as_str) {
                        part.insert((s.into(), code.into()));
                    }
                }
            }
            (Some(s), None) => {
                let cs = defs.code_systems.get(strip_version(s))?;
                if cs.get("content").and_then(Value::as_str) != Some("complete") {
                    return None;
                }
                concepts(s, cs.get("concept"), &mut part);
            }
            (None, _) => {}
        }
        let imports: Vec<&str> = inc
            .get("valueSet")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (i, imp) in imports.iter().enumerate() {
            let codes = expand(defs, imp, depth + 1)?;
            if system.is_none() && i == 0 {
                part = codes;
            } else {
                part.retain(|c| codes.contains(c));
            }
        }
        out.extend(part);
    }
    if compose.get("exclude").is_some() {
        return None;
    }
    (!out.is_empty()).then_some(out)
}

fn flatten(contains: Option<&Value>, out: &mut Codes) {
    for c in contains.and_then(Value::as_array).into_iter().flatten() {
        if let Some(code) = c.get("code").and_then(Value::as_str) {
            let system = c.get("system").and_then(Value::as_str).unwrap_or_default();
            out.insert((system.into(), code.into()));
        }
        flatten(c.get("contains"), out);
    }
}

fn concepts(system: &str, list: Option<&Value>, out: &mut Codes) {
    for c in list.and_then(Value::as_array).into_iter().flatten() {
        if let Some(code) = c.get("code").and_then(Value::as_str) {
            out.insert((system.into(), code.into()));
        }
        concepts(system, c.get("concept"), out);
    }
}
