//! The constraints (FHIRPath invariants) a profile adds to its elements, beyond those of the base
//! definition (which the walk already checks), evaluated on each value by the profile checker. The
//! engine lacks `memberOf()`, so `[path.]memberOf('value set')` is evaluated here against the
//! terminology, as the HL7 validator's FHIRPath host does.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::conform::Checker;
use super::invariant::{self, InvariantId, Level, Scope};
use super::profile::Profile;
use super::terminology::Membership;
use crate::fhir::outcome::{IssueType, Severity};

/// One constraint a profile adds to an element.
#[derive(Debug, Clone)]
pub enum Constraint {
    /// Checked by the FHIRPath engine (an id in [`Profile::invariants`]).
    Engine(InvariantId),
    /// `[path.]memberOf('value set')`.
    MemberOf(Box<MemberOf>),
}

/// A `memberOf()` constraint.
#[derive(Debug, Clone)]
pub struct MemberOf {
    /// The constraint's key.
    pub key: Box<str>,
    /// Its human-readable rule.
    pub human: Box<str>,
    /// Whether failing it is an error (else a warning).
    pub error: bool,
    /// The member names leading from the element to the coded value (empty: the element itself).
    pub path: Vec<Box<str>>,
    /// The value set's canonical URL.
    pub value_set: Box<str>,
}

/// The constraint keys of the base definition's elements, by element path: those the walk checks.
#[derive(Debug, Default)]
pub struct BaseKeys(HashMap<String, HashSet<String>>);

impl BaseKeys {
    /// The keys of a base snapshot's elements.
    pub fn of(snapshot: &[Value]) -> Self {
        let mut map: HashMap<String, HashSet<String>> = HashMap::new();
        for e in snapshot {
            let Some(path) = e.get("path").and_then(Value::as_str) else {
                continue;
            };
            let keys = map.entry(path.to_owned()).or_default();
            for c in e
                .get("constraint")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(k) = c.get("key").and_then(Value::as_str) {
                    keys.insert(k.to_owned());
                }
            }
        }
        Self(map)
    }

    fn has(&self, path: &str, key: &str) -> bool {
        // The walk checks these two on every element itself.
        matches!(key, "ele-1" | "ext-1") || self.0.get(path).is_some_and(|k| k.contains(key))
    }
}

/// Compiles the constraints that snapshot element `e` (at `path`) adds to the base.
pub fn compile(
    e: &Value,
    path: &str,
    base: &BaseKeys,
    compiler: &mut invariant::Compiler,
) -> Vec<Constraint> {
    let added: Vec<&Value> = e
        .get("constraint")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| {
            c.get("key")
                .and_then(Value::as_str)
                .is_some_and(|k| !base.has(path, k))
        })
        .collect();
    let mut out = Vec::new();
    let mut engine = Vec::new();
    for c in added {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
        // Type reflection needs each node's FHIR type, which the JSON-based engine cannot tell
        // (`%context.type().name` of a HumanName): such constraints are left unchecked, as the
        // walk leaves the engine's gaps.
        if s("expression").contains("type()") {
            continue;
        }
        match parse_member_of(s("expression")) {
            Some((path, value_set)) => out.push(Constraint::MemberOf(Box::new(MemberOf {
                key: s("key").into(),
                human: s("human").into(),
                error: s("severity") == "error",
                path,
                value_set,
            }))),
            None => engine.push(c.clone()),
        }
    }
    if !engine.is_empty() {
        let ids = compiler.element(&json!({ "constraint": engine }));
        out.extend(ids.into_iter().map(Constraint::Engine));
    }
    out
}

/// The value sets the `memberOf()` constraints of `p` name.
pub fn value_sets(p: &Profile) -> impl Iterator<Item = &str> {
    p.elems
        .iter()
        .flat_map(|e| e.constraints.iter())
        .filter_map(|c| match c {
            Constraint::MemberOf(m) => Some(&*m.value_set),
            Constraint::Engine(_) => None,
        })
}

/// `memberOf('url')` or `a.b.memberOf('url')`: the path and the URL.
fn parse_member_of(expression: &str) -> Option<(Vec<Box<str>>, Box<str>)> {
    let e = expression.trim();
    let (head, rest) = e.split_once("memberOf(")?;
    let arg = rest.strip_suffix(')')?.trim();
    let url = arg
        .strip_prefix('\'')
        .and_then(|a| a.strip_suffix('\''))
        .filter(|u| !u.contains('\''))?;
    let path: Vec<Box<str>> = match head {
        "" => Vec::new(),
        h => {
            let h = h.strip_suffix('.')?;
            let names: Vec<&str> = h.split('.').collect();
            if names
                .iter()
                .any(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return None;
            }
            names.into_iter().map(Into::into).collect()
        }
    };
    Some((path, url.into()))
}

/// Checks the constraints of element `el` of profile `p` on `v`.
pub fn check<'a>(
    ck: &mut Checker<'a>,
    p: &'a Profile,
    constraints: &'a [Constraint],
    v: &'a Value,
) {
    let mut ids = Vec::new();
    for c in constraints {
        match c {
            Constraint::Engine(id) => ids.push(*id),
            Constraint::MemberOf(m) => {
                let mut items = vec![v];
                for name in &m.path {
                    items = items
                        .into_iter()
                        .filter_map(|x| x.get(&**name))
                        .flat_map(|x| match x {
                            Value::Array(a) => a.iter().collect(),
                            other => vec![other],
                        })
                        .collect();
                }
                // FHIRPath's memberOf() answers for a single coded item; anything else is left alone.
                if let [one] = items.as_slice() {
                    if ck.membership(&m.value_set, one) == Membership::NotIn {
                        let severity = if m.error {
                            Severity::Error
                        } else {
                            Severity::Warning
                        };
                        ck.report(
                            severity,
                            IssueType::Invariant,
                            format!("{}: {} (from {})", m.key, m.human, p.url),
                        );
                    }
                }
            }
        }
    }
    if ids.is_empty() {
        return;
    }
    let resource = ck.resource().unwrap_or(v);
    let scope = Scope {
        resource,
        root: ck.root_resource().unwrap_or(resource),
    };
    let mut failed = Vec::new();
    // Without the element tree at hand, `valueQuantity` is taken as a form of `value`.
    p.invariants
        .check(ids, v, scope, &|_, _| true, false, &mut failed);
    for f in failed {
        let inv = f.invariant;
        let severity = match inv.level {
            Level::Error => Severity::Error,
            Level::Warning => Severity::Warning,
        };
        ck.report(
            severity,
            IssueType::Invariant,
            format!("{}: {} (from {})", inv.key, inv.human, p.url),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::parse_member_of;

    #[test]
    fn member_of_expressions() {
        let (path, url) = parse_member_of("memberOf('http://x.org/vs')").unwrap();
        assert!(path.is_empty());
        assert_eq!(&*url, "http://x.org/vs");
        let (path, _) = parse_member_of(" code.coding.memberOf('http://x.org/vs') ").unwrap();
        assert_eq!(path.len(), 2);
        assert!(parse_member_of("code.where(x).memberOf('v')").is_none());
        assert!(parse_member_of("memberOf('v') and true").is_none());
    }
}
