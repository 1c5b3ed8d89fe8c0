//! Carries `warn`-mode validation findings to the client alongside the upstream's answer.
//!
//! Where FHIR has a place for them, they go there: a batch or transaction entry's issues become its
//! `Bundle.entry.response.outcome`, and issues about the write are appended to the response body when
//! that is an OperationOutcome (`Prefer: return=OperationOutcome`). Everything else (the usual case of a
//! create answered with the stored resource, or with no body) travels in the `X-Validation-Outcome`
//! header as compact JSON, ASCII-escaped and capped at [`HEADER_CAP`] bytes so no proxy drops it.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;

use crate::fhir::outcome::{Issue, IssueType, Severity};
use crate::fhir::parse::{json_to_xml, parse_wellformed};
use crate::fhir::{Format, OperationOutcome};
use crate::validate::enforce::Findings;

/// The response header holding findings that have no place in the body.
pub const HEADER: &str = "x-validation-outcome";

/// The most bytes the header may take; issues beyond it are summarised.
pub const HEADER_CAP: usize = 6 * 1024;

/// Attaches `findings` to a response whose FHIR body (in `format`, `None` when bodiless) is `body`.
pub fn attach(
    format: Format,
    headers: &mut HeaderMap,
    body: Option<Bytes>,
    findings: &Findings,
) -> Option<Bytes> {
    let mut rest = findings.outcome.clone();
    let new_body = body.as_ref().and_then(|b| {
        let mut doc = parse_wellformed(format, b).ok()?;
        let changed = place(&mut doc, findings, &mut rest);
        changed.then(|| encode(format, &doc)).flatten()
    });
    if new_body.is_none() {
        // Nothing could be placed in the body: every entry's issues go to the header too.
        rest = findings.outcome.clone();
        for o in findings.entries.values() {
            rest.issues.extend(o.issues.iter().cloned());
        }
    }
    if !rest.issues.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&header_text(&rest)) {
            headers.insert(HEADER, v);
        }
    }
    new_body.or(body)
}

/// Puts findings into the body where FHIR has room for them; `rest` keeps what found no place.
fn place(doc: &mut Value, findings: &Findings, rest: &mut OperationOutcome) -> bool {
    match doc.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => {
            let Some(entries) = doc.get_mut("entry").and_then(Value::as_array_mut) else {
                return false;
            };
            let mut changed = false;
            for (&i, outcome) in &findings.entries {
                match entries.get_mut(i).and_then(|e| e.get_mut("response")) {
                    Some(Value::Object(resp)) => {
                        let slot = resp
                            .entry("outcome")
                            .or_insert_with(|| OperationOutcome::default().to_json());
                        append(slot, outcome);
                        changed = true;
                    }
                    _ => rest.issues.extend(outcome.issues.iter().cloned()),
                }
            }
            changed
        }
        Some("OperationOutcome") => {
            for o in findings.entries.values() {
                rest.issues.extend(o.issues.iter().cloned());
            }
            if rest.issues.is_empty() {
                return false;
            }
            append(doc, rest);
            rest.issues.clear();
            true
        }
        _ => false,
    }
}

/// Appends an outcome's issues to an OperationOutcome in FHIR JSON.
fn append(target: &mut Value, outcome: &OperationOutcome) {
    let new = outcome.to_json();
    let issues = new["issue"].as_array().cloned().unwrap_or_default();
    match target.get_mut("issue").and_then(Value::as_array_mut) {
        Some(list) => list.extend(issues),
        None => target["issue"] = Value::Array(issues),
    }
}

fn encode(format: Format, doc: &Value) -> Option<Bytes> {
    match format {
        Format::Json => serde_json::to_vec(doc).ok().map(Bytes::from),
        Format::Xml => json_to_xml(doc).ok().map(Bytes::from),
    }
}

/// Compact JSON with every non-ASCII character escaped, cut to whole issues under [`HEADER_CAP`].
fn header_text(outcome: &OperationOutcome) -> String {
    let mut shown = outcome.clone();
    loop {
        let text = ascii_json(&shown.to_json());
        if text.len() <= HEADER_CAP || shown.issues.len() <= 1 {
            return text;
        }
        // Drop issues from the end until it fits, and say how many were left out.
        let keep = shown.issues.len() / 2;
        let hidden = outcome.issues.len() - keep;
        shown.issues.truncate(keep);
        shown.issues.push(Issue {
            severity: Severity::Information,
            code: IssueType::TooCostly,
            diagnostics: format!(
                "{hidden} more issues are not shown here; POST the resource to $validate to see them all"
            ),
            expression: Vec::new(),
        });
    }
}

fn ascii_json(v: &Value) -> String {
    let text = v.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn issue(text: &str, at: &str) -> Issue {
        Issue::error(IssueType::Value, text).at(at)
    }

    #[test]
    fn bundle_entries_get_response_outcomes() {
        let body = json!({"resourceType": "Bundle", "type": "transaction-response", "entry": [
            {"response": {"status": "201 Created"}}, {"response": {"status": "201 Created"}}]});
        let mut f = Findings::default();
        f.entries.insert(
            1,
            OperationOutcome::single(issue("bad gender", "Bundle.entry[1].resource.gender")),
        );
        let mut h = HeaderMap::new();
        let out = attach(
            Format::Json,
            &mut h,
            Some(Bytes::from(body.to_string())),
            &f,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["entry"][1]["response"]["outcome"]["issue"][0]["diagnostics"],
            "bad gender"
        );
        assert!(v["entry"][0]["response"].get("outcome").is_none());
        assert!(h.get(HEADER).is_none());
    }

    #[test]
    fn a_resource_body_leaves_findings_to_the_header() {
        let mut f = Findings::default();
        f.outcome
            .issues
            .push(issue("naïve – bad", "Patient.gender"));
        let mut h = HeaderMap::new();
        let body = Bytes::from_static(br#"{"resourceType":"Patient","id":"1"}"#);
        let out = attach(Format::Json, &mut h, Some(body.clone()), &f).unwrap();
        assert_eq!(out, body);
        let text = h.get(HEADER).unwrap().to_str().unwrap();
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["issue"][0]["diagnostics"], "naïve – bad");
        // Bodiless answers too.
        let mut h = HeaderMap::new();
        assert!(attach(Format::Xml, &mut h, None, &f).is_none());
        assert!(h.get(HEADER).is_some());
    }

    #[test]
    fn an_operation_outcome_body_gets_the_issues_appended() {
        let mut f = Findings::default();
        f.outcome.issues.push(issue("bad", "Patient.gender"));
        let mut h = HeaderMap::new();
        let body = "<OperationOutcome xmlns=\"http://hl7.org/fhir\"><issue><severity value=\"information\"/>\
                    <code value=\"informational\"/></issue></OperationOutcome>";
        let out = attach(Format::Xml, &mut h, Some(Bytes::from(body)), &f).unwrap();
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            text.contains("informational") && text.contains("Patient.gender"),
            "{text}"
        );
        assert!(h.get(HEADER).is_none());
    }

    #[test]
    fn the_header_is_capped_at_whole_issues() {
        let mut f = Findings::default();
        for i in 0..500 {
            f.outcome
                .issues
                .push(issue(&format!("issue number {i}"), "Patient.name"));
        }
        let mut h = HeaderMap::new();
        attach(Format::Json, &mut h, None, &f);
        let text = h.get(HEADER).unwrap().to_str().unwrap();
        assert!(text.len() <= HEADER_CAP);
        let v: Value = serde_json::from_str(text).unwrap();
        let last = v["issue"].as_array().unwrap().last().unwrap();
        assert!(last["diagnostics"]
            .as_str()
            .unwrap()
            .contains("more issues"));
    }
}
