//! Required bindings: membership of codes in the pre-expanded ValueSets that a binding names.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::definitions::Definitions;
use super::model::{Model, Strength};

/// Whether a code is in a value set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// It is in the expansion.
    In,
    /// The expansion is closed and the code is not in it.
    NotIn,
    /// No closed expansion to decide with (not shipped, too costly, unclosed).
    Unknown,
}

/// A closed expansion, flattened.
#[derive(Debug, Default)]
struct Expansion {
    /// Codes by system.
    by_system: HashMap<String, HashSet<String>>,
    /// Codes alone, for `code` elements (which carry no system).
    codes: HashSet<String>,
}

/// The closed expansions of every value set a required binding names.
#[derive(Debug, Default)]
pub struct Terminology {
    sets: HashMap<Box<str>, Expansion>,
}

impl Terminology {
    /// Indexes the value sets that required bindings in `model` name and `defs` holds expanded.
    pub fn compile(defs: &Definitions, model: &Model) -> Self {
        let wanted: HashSet<&str> = model
            .defs
            .iter()
            .flat_map(|d| d.nodes.iter())
            .filter_map(|n| n.binding.as_ref())
            .filter(|b| b.strength == Strength::Required)
            .map(|b| &*b.value_set)
            .collect();
        let sets = wanted
            .into_iter()
            .filter_map(|url| {
                let vs = defs.value_sets.get(url)?;
                Some((url.into(), closed_expansion(vs)?))
            })
            .collect();
        Self { sets }
    }

    /// Whether `code` (of `system`, when given) is in the value set `url`.
    pub fn member(&self, url: &str, system: Option<&str>, code: &str) -> Membership {
        let Some(exp) = self.sets.get(url) else {
            return Membership::Unknown;
        };
        let found = match system {
            Some(s) => exp.by_system.get(s).is_some_and(|c| c.contains(code)),
            None => exp.codes.contains(code),
        };
        if found {
            Membership::In
        } else {
            Membership::NotIn
        }
    }
}

/// The flattened expansion, unless it is absent or marked too costly / unclosed.
fn closed_expansion(vs: &Value) -> Option<Expansion> {
    let exp = vs.get("expansion")?;
    let open = exp
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|x| {
            matches!(
                x.get("url").and_then(Value::as_str),
                Some(
                    "http://hl7.org/fhir/StructureDefinition/valueset-toocostly"
                        | "http://hl7.org/fhir/StructureDefinition/valueset-unclosed"
                )
            ) && x.get("valueBoolean").and_then(Value::as_bool) != Some(false)
        });
    if open {
        return None;
    }
    let mut out = Expansion::default();
    flatten(exp.get("contains"), &mut out);
    if out.codes.is_empty() {
        return None;
    }
    Some(out)
}

fn flatten(contains: Option<&Value>, out: &mut Expansion) {
    for c in contains.and_then(Value::as_array).into_iter().flatten() {
        if let Some(code) = c.get("code").and_then(Value::as_str) {
            let system = c.get("system").and_then(Value::as_str).unwrap_or_default();
            out.by_system
                .entry(system.to_owned())
                .or_default()
                .insert(code.to_owned());
            out.codes.insert(code.to_owned());
        }
        flatten(c.get("contains"), out);
    }
}
