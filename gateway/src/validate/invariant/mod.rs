//! FHIRPath invariants (`ElementDefinition.constraint`): compiled once per distinct (key, expression)
//! into a shared [`Table`], checked per element by the walker.
//!
//! Each invariant is checked one of three ways:
//! - natively ([`native`]), for the hot or engine-unfriendly ones (`dom-3`, `ref-1`, `obs-7`, …);
//! - by the `rh-fhirpath` engine over a parsed expression ([`Compiled`]);
//! - not at all ([`How::Skipped`]), when the expression does not parse or calls a function the engine
//!   lacks (`resolve()`, `htmlChecks()`, `memberOf()`, …). A skipped invariant never rejects.
//!
//! The engine clones every JSON value it navigates, so it is kept away from whole resources: an
//! invariant whose focus properties are all absent gets its verdict from compile time (see
//! [`analyze`]), and an evaluated one sees a focus holding only the properties it reads.
//! `%resource` is only given to the expressions that read it. Only an explicit `false` fails an
//! invariant: an empty result or an evaluation error passes, so an engine gap cannot reject a valid
//! resource. Measured figures are in `gateway/ARCHITECTURE.md` ("FHIRPath invariants").

pub mod analyze;
pub mod native;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rh_fhirpath::evaluator::FunctionRegistry;
use rh_fhirpath::{
    EvaluationContext, FhirPathEvaluator, FhirPathExpression, FhirPathParser, FhirPathValue,
};
use serde_json::{Map, Value};

use native::Native;

/// Index of an [`Invariant`] in [`Table::list`].
pub type InvariantId = u32;

/// Invariants built into the walker itself, never compiled here.
const WALKER_NATIVE: &[&str] = &["ele-1", "ext-1"];

/// How bad a failed invariant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `severity: error`: the resource is invalid.
    Error,
    /// `severity: warning` (best practice): reported, never blocking.
    Warning,
}

/// One compiled constraint.
#[derive(Debug)]
pub struct Invariant {
    /// `dom-3`, `obs-7`.
    pub key: Box<str>,
    /// Error or warning.
    pub level: Level,
    /// The human-readable rule, quoted in the issue as HL7 does.
    pub human: Box<str>,
    /// The FHIRPath source.
    pub expression: Box<str>,
    /// How it is checked.
    pub how: How,
}

/// How an invariant is checked.
#[derive(Debug)]
pub enum How {
    /// In Rust.
    Native(Native),
    /// By the FHIRPath engine.
    Engine(Box<Compiled>),
    /// Not checked, with why.
    Skipped(String),
}

/// A parsed expression and what it reads.
#[derive(Debug)]
pub struct Compiled {
    expr: FhirPathExpression,
    /// The focus properties it reads, when it reads the focus through them alone.
    roots: Option<Vec<Box<str>>>,
    /// Whether it holds when all `roots` are absent (computed once, against `{}`).
    holds_when_absent: bool,
    resource: bool,
    root_resource: bool,
    context: bool,
}

/// Every distinct invariant of the compiled definitions.
#[derive(Debug, Default)]
pub struct Table {
    /// By id.
    pub list: Vec<Invariant>,
    by_source: HashMap<(Box<str>, Box<str>), InvariantId>,
}

/// The resources around a focus.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'v> {
    /// `%resource`: the resource the element is in (a contained or Bundle entry resource is its own).
    pub resource: &'v Value,
    /// `%rootResource`: the container of a contained resource, else `%resource`.
    pub root: &'v Value,
}

/// A failed invariant.
#[derive(Debug)]
pub struct Failure<'t> {
    /// The invariant.
    pub invariant: &'t Invariant,
}

thread_local! {
    /// The engine is not `Sync` (its function table holds non-`Send` closures) and costly to build,
    /// so each thread keeps one.
    static ENGINE: FhirPathEvaluator = FhirPathEvaluator::new();
}

/// Compiles constraints into a [`Table`], parsing each distinct expression once.
#[derive(Default)]
pub struct Compiler {
    table: Table,
    parser: FhirPathParser,
    registry: FunctionRegistry,
}

impl std::fmt::Debug for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiler")
            .field("invariants", &self.table.list.len())
            .finish_non_exhaustive()
    }
}

impl Compiler {
    /// The ids of an ElementDefinition's constraints (minus the walker's own `ele-1`, `ext-1`).
    pub fn element(&mut self, e: &Value) -> Vec<InvariantId> {
        e.get("constraint")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| self.constraint(c))
            .collect()
    }

    /// The finished table.
    pub fn finish(self) -> Table {
        self.table
    }

    fn constraint(&mut self, c: &Value) -> Option<InvariantId> {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
        let key = s("key");
        if WALKER_NATIVE.contains(&key) {
            return None;
        }
        let source = (Box::<str>::from(key), Box::<str>::from(s("expression")));
        if let Some(&id) = self.table.by_source.get(&source) {
            return Some(id);
        }
        let id = InvariantId::try_from(self.table.list.len()).ok()?;
        let how = self.how(key, s("expression"));
        self.table.list.push(Invariant {
            key: source.0.clone(),
            level: if s("severity") == "error" {
                Level::Error
            } else {
                Level::Warning
            },
            human: s("human").into(),
            expression: source.1.clone(),
            how,
        });
        self.table.by_source.insert(source, id);
        Some(id)
    }

    fn how(&self, key: &str, expression: &str) -> How {
        if let Some(n) = Native::for_key(key) {
            return How::Native(n);
        }
        if expression.is_empty() {
            return How::Skipped("no FHIRPath expression".into());
        }
        let expr = match self.parser.parse(expression) {
            Ok(e) => e,
            Err(e) => return How::Skipped(format!("does not parse: {e}")),
        };
        let facts = analyze::facts(&expr.root, &|name| {
            analyze::engine_has(&self.registry, name)
        });
        if !facts.unsupported.is_empty() {
            return How::Skipped(format!(
                "calls {} which the engine lacks",
                facts.unsupported.join("(), ") + "()"
            ));
        }
        let mut compiled = Compiled {
            expr,
            roots: facts.roots,
            holds_when_absent: true,
            resource: facts.resource,
            root_resource: facts.root_resource,
            context: facts.context,
        };
        if compiled.roots.is_some() {
            let empty = Value::Object(Map::new());
            compiled.holds_when_absent = compiled.eval(&empty, None);
        }
        How::Engine(Box::new(compiled))
    }
}

impl Table {
    /// Checks invariants on a focus; `warnings` also checks the best-practice ones.
    pub fn check<'t>(
        &'t self,
        ids: impl IntoIterator<Item = InvariantId>,
        focus: &Value,
        scope: Scope<'_>,
        warnings: bool,
        out: &mut Vec<Failure<'t>>,
    ) {
        for id in ids {
            let Some(inv) = self.list.get(id as usize) else {
                continue;
            };
            if inv.level == Level::Warning && !warnings {
                continue;
            }
            let holds = match &inv.how {
                How::Native(n) => n.holds(focus, scope),
                How::Engine(c) => c.holds(focus, scope),
                How::Skipped(_) => true,
            };
            if !holds {
                out.push(Failure { invariant: inv });
            }
        }
    }
}

impl Compiled {
    /// Whether the invariant holds on `focus`.
    fn holds(&self, focus: &Value, scope: Scope<'_>) -> bool {
        match (&self.roots, focus.as_object()) {
            (Some(roots), Some(obj)) => {
                let projected: Map<String, Value> = obj
                    .iter()
                    .filter(|(k, _)| *k == "resourceType" || roots.iter().any(|r| reaches(r, k)))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                // The engine answers a member named like the resource type with the resource, and
                // `resource` with `resourceType` (as a choice form), so both count as present.
                let present = obj.iter().any(|(k, v)| {
                    roots
                        .iter()
                        .any(|r| reaches(r, k) || (k == "resourceType" && v.as_str() == Some(&**r)))
                });
                if !present {
                    self.holds_when_absent
                } else {
                    self.eval(&Value::Object(projected), Some(scope))
                }
            }
            _ => self.eval(focus, Some(scope)),
        }
    }

    /// Evaluates with the engine; only an explicit `false` fails.
    fn eval(&self, focus: &Value, scope: Option<Scope<'_>>) -> bool {
        let mut constants = HashMap::new();
        let mut root = Value::Null;
        if let Some(s) = scope {
            if self.resource {
                root = s.resource.clone();
            }
            if self.root_resource {
                constants.insert("rootResource".to_owned(), FhirPathValue::from_json(s.root));
            }
        }
        if self.context {
            // The engine reads `%context` from the current item inside `where()`: pin it.
            constants.insert("context".to_owned(), FhirPathValue::from_json(focus));
        }
        let ctx = EvaluationContext {
            root,
            current: focus.clone(),
            this_value: None,
            total_value: None,
            index_value: None,
            constants,
            trace_logs: Rc::new(RefCell::new(Vec::new())),
            strict_mode: false,
            check_ordered_functions: false,
        };
        let result = ENGINE.with(|engine| engine.evaluate(&self.expr, &ctx));
        !matches!(result, Ok(v) if is_false(&v))
    }
}

/// Whether a result is a single `false`.
fn is_false(v: &FhirPathValue) -> bool {
    match v {
        FhirPathValue::Boolean(b) | FhirPathValue::TypedBoolean { value: b, .. } => !b,
        FhirPathValue::Collection(items) | FhirPathValue::UnorderedCollection(items) => {
            matches!(items.as_slice(), [one] if is_false(one))
        }
        FhirPathValue::FhirPrimitive { inner, .. } => is_false(inner),
        _ => false,
    }
}

/// Whether the engine's member access for `root` can read JSON property `key`: the property itself,
/// a choice form (`value` → `valueQuantity`), or the `_` twin of either.
fn reaches(root: &str, key: &str) -> bool {
    let key = key.strip_prefix('_').unwrap_or(key);
    key.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_uppercase))
}

#[cfg(test)]
mod tests;
