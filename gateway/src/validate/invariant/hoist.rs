//! Hoisting of `%resource…`, `%rootResource…` and `%context…` paths out of an invariant, so each is
//! evaluated once per check instead of once per item of an enclosing `all()` or `where()`.
//!
//! Why: the engine copies its whole context, `%resource` included, for every item it iterates, so
//! `entry.all(request.exists() = (%resource.type = 'batch' …))` (bdl-3) on a Bundle of n entries
//! copied the Bundle n times: quadratic. A hoisted path becomes an external constant (`%__h0`) holding
//! only the path's value.

use rh_fhirpath::{Expression, Invocation, Literal, Term};

/// The environment variables whose paths are hoisted.
const ENV: &[&str] = &["resource", "rootResource", "context"];
/// Functions whose argument is a type name, not an expression over the focus.
const TYPE_ARG: &[&str] = &["ofType", "as", "is"];
/// Functions evaluating their arguments per item of their input (see `analyze::PER_ITEM`).
const PER_ITEM: &[&str] = &["where", "select", "repeat", "exists", "all", "sort"];
/// The prefix of a hoisted constant's name.
pub const PREFIX: &str = "__h";

/// Replaces every maximal environment-rooted path in `e` with a constant `%__h<i>`; returns the
/// paths in order of `i`.
pub fn hoist(e: &mut Expression) -> Vec<Expression> {
    let mut out = Vec::new();
    replace(e, &mut out);
    out
}

fn replace(e: &mut Expression, out: &mut Vec<Expression>) {
    if rooted(e) && !matches!(e, Expression::Term(Term::ExternalConstant(_))) {
        let name = format!("{PREFIX}{}", out.len());
        let path = std::mem::replace(e, Expression::Term(Term::ExternalConstant(name)));
        out.push(path);
        return;
    }
    match e {
        Expression::Term(Term::Parenthesized(inner)) => replace(inner, out),
        Expression::Term(Term::Invocation(Invocation::Function { parameters, .. })) => {
            parameters.iter_mut().for_each(|p| replace(p, out));
        }
        Expression::Term(_) => {}
        Expression::Invocation { left, invocation } => {
            replace(left, out);
            if let Invocation::Function { parameters, .. } = invocation {
                parameters.iter_mut().for_each(|p| replace(p, out));
            }
        }
        Expression::Indexer { left, index } => {
            replace(left, out);
            replace(index, out);
        }
        Expression::Polarity { operand, .. } => replace(operand, out),
        Expression::Type { left, .. } => replace(left, out),
        Expression::Multiplicative { left, right, .. }
        | Expression::Additive { left, right, .. }
        | Expression::Union { left, right }
        | Expression::Inequality { left, right, .. }
        | Expression::Equality { left, right, .. }
        | Expression::Membership { left, right, .. }
        | Expression::And { left, right }
        | Expression::Or { left, right, .. }
        | Expression::Implies { left, right } => {
            replace(left, out);
            replace(right, out);
        }
    }
}

/// Whether `e` is a path from an environment variable whose value does not depend on where it is
/// evaluated: every function argument along it is a literal, a type name, or a per-item expression
/// that reads no environment variable.
fn rooted(e: &Expression) -> bool {
    match e {
        Expression::Term(Term::ExternalConstant(n)) => ENV.contains(&n.as_str()),
        Expression::Term(Term::Parenthesized(inner)) => rooted(inner),
        Expression::Invocation { left, invocation } => {
            rooted(left)
                && match invocation {
                    Invocation::Member(_) => true,
                    Invocation::Function { name, parameters } => parameters.iter().all(|p| {
                        TYPE_ARG.contains(&name.as_str())
                            || is_literal(p)
                            || (PER_ITEM.contains(&name.as_str()) && !reads_env(p))
                    }),
                    _ => false,
                }
        }
        Expression::Indexer { left, index } => rooted(left) && is_literal(index),
        _ => false,
    }
}

fn is_literal(e: &Expression) -> bool {
    matches!(e, Expression::Term(Term::Literal(l)) if !matches!(l, Literal::Null))
}

/// Whether an expression mentions an environment variable anywhere.
fn reads_env(e: &Expression) -> bool {
    format!("{e:?}").contains("ExternalConstant")
}
