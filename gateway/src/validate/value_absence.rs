//! Profile rules on primitives that carry no value, only extensions (`"_active": {…}`): R5's
//! `ElementDefinition.mustHaveValue` and `valueAlternatives`, which R4 profiles state through the
//! cross-version extensions the HL7 validator reads.

use serde_json::{Map, Value};

use super::conform::Checker;
use super::profile::{ElemId, Profile};
use crate::fhir::outcome::{IssueType, Severity};

/// The cross-version extension saying an element must have a value (extensions alone will not do).
pub const MUST_HAVE_VALUE: &str =
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition.mustHaveValue";
/// The cross-version extension listing the extensions that may stand in for an absent value.
pub const VALUE_ALTERNATIVES: &str =
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition.valueAlternatives";

/// Reports the value-less repeats of element `c` in `obj` that its profile rules out.
pub fn check<'a>(ck: &mut Checker<'a>, p: &'a Profile, c: ElemId, obj: &'a Map<String, Value>) {
    let el = p.elem(c);
    if !el.must_have_value && el.value_alternatives.is_empty() {
        return;
    }
    let Some(twin) = obj.get(&format!("_{}", el.name)) else {
        return;
    };
    let values = obj.get(&*el.name);
    let absent: Vec<(Option<usize>, &Value)> = match twin {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter(|(i, x)| {
                x.is_object() && values.and_then(|v| v.get(*i)).is_none_or(Value::is_null)
            })
            .map(|(i, x)| (Some(i), x))
            .collect(),
        Value::Object(_) if values.is_none_or(Value::is_null) => vec![(None, twin)],
        _ => Vec::new(),
    };
    for (index, ext_holder) in absent {
        ck.push_item(p, c, None, index);
        if el.must_have_value {
            ck.report(
                Severity::Error,
                IssueType::Invalid,
                format!(
                    "{}: the profile {} requires a value here, not only extensions",
                    el.path, p.url
                ),
            );
        } else if !has_any_extension(ext_holder, &el.value_alternatives) {
            ck.report(
                Severity::Error,
                IssueType::Invalid,
                format!(
                    "{}: without a value, the profile {} requires one of the extensions {}",
                    el.path,
                    p.url,
                    el.value_alternatives.join(", ")
                ),
            );
        }
        ck.pop_item(index);
    }
}

fn has_any_extension(holder: &Value, urls: &[Box<str>]) -> bool {
    holder
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| x.get("url").and_then(Value::as_str))
        .any(|u| urls.iter().any(|w| **w == *u))
}
