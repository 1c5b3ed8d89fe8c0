//! Coding displays, as the HL7 validator checks them ("Wrong Display Name"): a Coding's display must be
//! the one its code system gives the code (R4's code systems, compared without case or surrounding
//! space), unless a profile checked against binds the element to a value set that offers that display
//! for the code (a display or designation in its expansion). Value sets offering displays are read
//! from a profile's contained resources (`#id` bindings); others offer none here.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::definitions::{embedded_code_system_displays, strip_version};
use super::registry::Profiles;
use crate::fhir::outcome::{Issue, IssueType};

/// A Coding whose display its code system does not give.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Where the Coding is.
    pub location: String,
    /// The path of the element a profile would bind (`Patient.contact.relationship`).
    pub element: String,
    /// The Coding's system.
    pub system: String,
    /// Its code.
    pub code: String,
    /// Its display.
    pub display: String,
    /// The code system's display.
    pub expected: String,
}

impl Finding {
    /// The issue, when no profile offers the display.
    pub fn issue(&self) -> Issue {
        Issue::error(
            IssueType::Invalid,
            format!(
                "Wrong Display Name '{}' for {}#{}: the code system's display is '{}'",
                self.display, self.system, self.code, self.expected
            ),
        )
        .at(self.location.clone())
    }
}

static DISPLAYS: LazyLock<HashMap<(String, String), String>> =
    LazyLock::new(|| embedded_code_system_displays().unwrap_or_default());

/// Checks a Coding (`v`) at `location`, within the element at `element`.
pub fn check(v: &Value, location: impl FnOnce() -> String, element: &str) -> Option<Finding> {
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    let (system, code, display) = (s("system")?, s("code")?, s("display")?);
    let expected = DISPLAYS.get(&(system.to_owned(), code.to_owned()))?;
    if same(display, expected) {
        return None;
    }
    Some(Finding {
        location: location(),
        element: element.to_owned(),
        system: system.to_owned(),
        code: code.to_owned(),
        display: display.to_owned(),
        expected: expected.clone(),
    })
}

/// Whether profile `url` binds the finding's element to a value set that offers its display.
pub fn offered_by(reg: &Profiles, url: &str, f: &Finding) -> bool {
    let Some(p) = reg.get(url) else {
        return false;
    };
    let Some(vs) = p
        .elems
        .iter()
        .filter(|e| *e.path == f.element)
        .find_map(|e| e.binding.as_ref())
        .map(|b| &*b.value_set)
    else {
        return false;
    };
    let Some(id) = vs.strip_prefix('#') else {
        return false;
    };
    let Some(sd) = reg.source(strip_version(url)) else {
        return false;
    };
    let contained = sd.get("contained").and_then(Value::as_array);
    let Some(vs) = contained
        .into_iter()
        .flatten()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
    else {
        return false;
    };
    let mut stack: Vec<&Value> = vs.get("expansion").into_iter().collect();
    while let Some(holder) = stack.pop() {
        for c in holder
            .get("contains")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let matches = c.get("system").and_then(Value::as_str) == Some(&f.system)
                && c.get("code").and_then(Value::as_str) == Some(&f.code);
            if matches {
                let display = c.get("display").and_then(Value::as_str);
                let designations = c
                    .get("designation")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.get("value").and_then(Value::as_str));
                if display
                    .into_iter()
                    .chain(designations)
                    .any(|d| same(d, &f.display))
                {
                    return true;
                }
            }
            stack.push(c);
        }
    }
    false
}

fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}
