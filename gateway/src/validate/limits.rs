//! Value limits a profile sets on an element: `minValue[x]`/`maxValue[x]` (numbers, dates and times,
//! Quantities in convertible mass units) and the `minLength` extension.

use std::cmp::Ordering;

use serde_json::Value;

use super::conform::Checker;
use super::profile::Elem;
use crate::fhir::outcome::{IssueType, Severity};

/// Reports the limits of `el` that `v` breaks.
pub fn check(ck: &mut Checker<'_>, el: &Elem, v: &Value, profile: &str) {
    if let (Some(min), Some(s)) = (el.min_length, v.as_str()) {
        if s.chars().count() < min {
            ck.report(
                Severity::Error,
                IssueType::Invalid,
                format!(
                    "{}: shorter than the minimum length {min} (from {profile})",
                    el.path
                ),
            );
        }
    }
    for (limit, below) in [(&el.min_value, true), (&el.max_value, false)] {
        let Some((ty, bound)) = limit else { continue };
        let Some(ord) = compare(ty, v, bound) else {
            continue;
        };
        let broken = if below {
            ord == Ordering::Less
        } else {
            ord == Ordering::Greater
        };
        if broken {
            let which = if below {
                "less than the minimum"
            } else {
                "greater than the maximum"
            };
            ck.report(
                Severity::Error,
                IssueType::Invalid,
                format!(
                    "{}: the value is {which} value allowed (from {profile})",
                    el.path
                ),
            );
        }
    }
}

/// How `v` compares with the limit `bound` of type `ty`; `None` when they cannot be compared.
fn compare(ty: &str, v: &Value, bound: &Value) -> Option<Ordering> {
    match ty {
        "Integer" | "Decimal" | "PositiveInt" | "UnsignedInt" | "Integer64" => {
            v.as_f64()?.partial_cmp(&bound.as_f64()?)
        }
        "Date" | "DateTime" | "Instant" | "Time" => {
            let (a, b) = (v.as_str()?, bound.as_str()?);
            let n = a.len().min(b.len()).min(19);
            Some(a.get(..n)?.cmp(b.get(..n)?))
        }
        "Quantity" => {
            let a = v.get("value")?.as_f64()? * factor(v)?;
            let b = bound.get("value")?.as_f64()? * factor(bound)?;
            a.partial_cmp(&b)
        }
        _ => None,
    }
}

/// The factor to grams of a UCUM mass unit; 1 for a quantity of any other single unit system.
fn factor(q: &Value) -> Option<f64> {
    let code = q.get("code").or_else(|| q.get("unit"))?.as_str()?;
    Some(match code {
        "kg" => 1000.0,
        "g" => 1.0,
        "mg" => 0.001,
        "ug" => 0.000_001,
        _ => 1.0,
    })
}
