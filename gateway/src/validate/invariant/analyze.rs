//! Static facts about a parsed FHIRPath invariant: which focus properties it reads, which environment
//! variables it needs, and which functions it calls that the engine cannot evaluate.
//!
//! The facts drive two optimisations in [`super`]: an invariant whose focus properties ("roots") are
//! all absent has a verdict fixed at compile time, and an evaluated one gets a focus holding only its
//! roots, so the engine (which clones the values it navigates) never copies the rest of the element.
//! Both are exact only when the focus is reached through its roots alone, which [`Facts::roots`]
//! promises by being `Some`.

use rh_fhirpath::evaluator::FunctionRegistry;
use rh_fhirpath::{Expression, Invocation, Term};

/// Functions the engine evaluates itself (their arguments are expressions, not values), so they are
/// not in its function registry.
const SPECIAL: &[&str] = &[
    "where",
    "select",
    "repeat",
    "ofType",
    "is",
    "as",
    "trace",
    "aggregate",
    "iif",
    "sort",
    "exists",
    "all",
    "first",
    "last",
    "tail",
    "skip",
];

/// Functions whose arguments the engine evaluates once per item of the input, with the item as the
/// focus. Identifiers inside them name the item's properties, not the invariant's focus.
const PER_ITEM: &[&str] = &["where", "select", "repeat", "exists", "all", "sort"];

/// Registered in the engine but not implemented as FHIR defines them: an invariant calling one is
/// skipped rather than trusted.
const UNFAITHFUL: &[&str] = &["conformsTo"];

/// What an expression reads.
#[derive(Debug, Default)]
pub struct Facts {
    /// The focus properties the expression navigates to; `None` when it also reads the focus another
    /// way (`$this`, a function on the focus, `%context`, `%resource`, `%rootResource`).
    pub roots: Option<Vec<Box<str>>>,
    /// Reads `%resource`.
    pub resource: bool,
    /// Reads `%rootResource`.
    pub root_resource: bool,
    /// Reads `%context`.
    pub context: bool,
    /// Functions the engine does not have, or has only as a stub.
    pub unsupported: Vec<String>,
}

/// Whether expressions are evaluated with the invariant's focus or with an item of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Focus,
    Item,
}

/// Collects the [`Facts`] of a parsed expression.
pub fn facts(e: &Expression, engine_has: &dyn Fn(&str) -> bool) -> Facts {
    let mut w = Walk {
        roots: Vec::new(),
        opaque: false,
        facts: Facts::default(),
        engine_has,
    };
    w.expr(e, Scope::Focus);
    let mut facts = w.facts;
    if !w.opaque && !facts.resource && !facts.root_resource && !facts.context {
        w.roots.sort();
        w.roots.dedup();
        facts.roots = Some(w.roots.into_iter().map(Into::into).collect());
    }
    facts
}

/// Whether the engine implements a function as FHIRPath defines it.
pub fn engine_has(registry: &FunctionRegistry, name: &str) -> bool {
    !UNFAITHFUL.contains(&name)
        && (SPECIAL.contains(&name) || registry.get_function(name).is_some())
}

struct Walk<'f> {
    roots: Vec<String>,
    /// The focus is read other than through a named property.
    opaque: bool,
    facts: Facts,
    engine_has: &'f dyn Fn(&str) -> bool,
}

impl Walk<'_> {
    fn expr(&mut self, e: &Expression, scope: Scope) {
        match e {
            Expression::Term(t) => self.term(t, scope),
            Expression::Invocation { left, invocation } => {
                self.expr(left, scope);
                if let Invocation::Function { name, parameters } = invocation {
                    self.function(name, parameters, scope);
                }
            }
            Expression::Indexer { left, index } => {
                self.expr(left, scope);
                self.expr(index, scope);
            }
            Expression::Polarity { operand, .. } => self.expr(operand, scope),
            Expression::Type { left, .. } => self.expr(left, scope),
            Expression::Multiplicative { left, right, .. }
            | Expression::Additive { left, right, .. }
            | Expression::Union { left, right }
            | Expression::Inequality { left, right, .. }
            | Expression::Equality { left, right, .. }
            | Expression::Membership { left, right, .. }
            | Expression::And { left, right }
            | Expression::Or { left, right, .. }
            | Expression::Implies { left, right } => {
                self.expr(left, scope);
                self.expr(right, scope);
            }
        }
    }

    fn term(&mut self, t: &Term, scope: Scope) {
        match t {
            Term::Literal(_) => {}
            Term::Parenthesized(e) => self.expr(e, scope),
            Term::ExternalConstant(name) => match name.as_str() {
                "resource" => self.facts.resource = true,
                "rootResource" => self.facts.root_resource = true,
                "context" => self.facts.context = true,
                _ => {}
            },
            Term::Invocation(inv) => match inv {
                Invocation::Member(name) => {
                    if scope == Scope::Focus {
                        self.roots.push(name.clone());
                    }
                }
                Invocation::Function { name, parameters } => {
                    // A function with no input applies to the focus itself.
                    if scope == Scope::Focus {
                        self.opaque = true;
                    }
                    self.function(name, parameters, scope);
                }
                Invocation::This => {
                    if scope == Scope::Focus {
                        self.opaque = true;
                    }
                }
                Invocation::Index | Invocation::Total => {}
            },
        }
    }

    fn function(&mut self, name: &str, parameters: &[Expression], scope: Scope) {
        if !(self.engine_has)(name) && !self.facts.unsupported.iter().any(|n| n == name) {
            self.facts.unsupported.push(name.to_owned());
        }
        for p in parameters {
            if PER_ITEM.contains(&name) {
                self.expr(p, Scope::Item);
            } else {
                // Other functions evaluate their arguments against the enclosing focus. Those that
                // also iterate (`aggregate`, `iif`, `trace`) are walked this way too: that can only add
                // roots or make the focus opaque, both of which are safe.
                self.expr(p, scope);
            }
        }
    }
}
