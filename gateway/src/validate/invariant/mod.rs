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
//! resource. Measured figures are in `docs/performance.md` ("Validation speed").

pub mod analyze;
pub mod hoist;
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
    /// The expression, its environment paths replaced by constants (see [`hoist`]).
    expr: FhirPathExpression,
    /// The hoisted environment paths, evaluated once per check into `%__h<i>`.
    hoisted: Vec<FhirPathExpression>,
    /// The focus properties `expr` reads, when it reads the focus through them alone.
    roots: Option<Vec<Box<str>>>,
    /// Whether it holds when all `roots` are absent (computed once, against `{}`); `None` when its
    /// verdict also depends on hoisted paths.
    holds_when_absent: Option<bool>,
    /// What `expr` itself still reads.
    env: Env,
    /// What the hoisted paths read.
    hoisted_env: Env,
}

/// The environment variables an expression reads.
#[derive(Debug, Clone, Copy, Default)]
struct Env {
    resource: bool,
    root_resource: bool,
    context: bool,
}

impl Env {
    fn of(f: &analyze::Facts) -> Self {
        Self {
            resource: f.resource,
            root_resource: f.root_resource,
            context: f.context,
        }
    }

    /// The engine context for `current`, with `%resource`, `%rootResource` and `%context` when read.
    fn context(
        self,
        current: Value,
        focus: &Value,
        scope: Option<Scope<'_>>,
        mut constants: HashMap<String, FhirPathValue>,
    ) -> EvaluationContext {
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
        EvaluationContext {
            root,
            current,
            this_value: None,
            total_value: None,
            index_value: None,
            constants,
            trace_logs: Rc::new(RefCell::new(Vec::new())),
            strict_mode: false,
            check_ordered_functions: false,
        }
    }
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
        let hoisted_env = Env::of(&facts);
        let mut expr = expr;
        let hoisted = hoist::hoist(&mut expr.root);
        let main = analyze::facts(&expr.root, &|_| true);
        let mut compiled = Compiled {
            expr,
            hoisted: hoisted
                .into_iter()
                .map(|root| FhirPathExpression { root })
                .collect(),
            roots: main.roots.clone(),
            holds_when_absent: None,
            env: Env::of(&main),
            hoisted_env,
        };
        if compiled.roots.is_some() && compiled.hoisted.is_empty() {
            let empty = Value::Object(Map::new());
            compiled.holds_when_absent = Some(compiled.eval(&empty, &empty, None));
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
        shape: &dyn Fn(&str, &str) -> bool,
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
                How::Engine(c) => c.holds(focus, scope, shape),
                How::Skipped(_) => true,
            };
            if !holds {
                out.push(Failure { invariant: inv });
            }
        }
    }
}

impl Compiled {
    /// Whether the invariant holds on `focus`; `shape(key, root)` says whether JSON property `key` is
    /// a choice form of element `root` (`valueQuantity` of `value`).
    fn holds(&self, focus: &Value, scope: Scope<'_>, shape: &dyn Fn(&str, &str) -> bool) -> bool {
        let (Some(roots), Some(obj)) = (&self.roots, focus.as_object()) else {
            return self.eval(focus, focus, Some(scope));
        };
        // The engine answers a member named like the resource type with the resource, and
        // `resource` with `resourceType` (as a choice form), so both count as present.
        let present = obj.iter().any(|(k, v)| {
            roots
                .iter()
                .any(|r| reaches(r, k) || (k == "resourceType" && v.as_str() == Some(&**r)))
        });
        if let (false, Some(verdict)) = (present, self.holds_when_absent) {
            return verdict;
        }
        let mut projected: Map<String, Value> = obj
            .iter()
            .filter(|(k, _)| *k == "resourceType" || roots.iter().any(|r| reaches(r, k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // The engine takes any `<root><Upper>…` property for an absent `root`, as if every element
        // were a choice: `response` would read `responseCode` (tst-5), `resource` `resourceType`.
        // An explicit null for such a root makes it read nothing, as FHIRPath says.
        for r in roots {
            let mut keys = obj.keys().filter(|k| !k.starts_with('_') && reaches(r, k));
            if !obj.contains_key(&**r)
                && keys.clone().next().is_some()
                && !keys.any(|k| shape(k, r))
            {
                projected.insert(r.to_string(), Value::Null);
            }
        }
        self.eval(&Value::Object(projected), focus, Some(scope))
    }

    /// Evaluates with the engine on `current` (the focus or its projection); only an explicit `false`
    /// fails.
    fn eval(&self, current: &Value, focus: &Value, scope: Option<Scope<'_>>) -> bool {
        ENGINE.with(|engine| {
            let mut constants = HashMap::new();
            if !self.hoisted.is_empty() {
                let env = self
                    .hoisted_env
                    .context(Value::Null, focus, scope, HashMap::new());
                for (i, h) in self.hoisted.iter().enumerate() {
                    // An error in a hoisted path would have been one in the whole expression.
                    let Ok(v) = engine.evaluate(h, &env) else {
                        return true;
                    };
                    constants.insert(format!("{}{i}", hoist::PREFIX), v);
                }
            }
            let ctx = self.env.context(current.clone(), focus, scope, constants);
            !matches!(engine.evaluate(&self.expr, &ctx), Ok(v) if is_false(&v))
        })
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
