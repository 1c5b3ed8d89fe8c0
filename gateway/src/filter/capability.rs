//! Marking the upstream's CapabilityStatement as served through Anchorgate.
//!
//! `implementation.description` names the gateway (keeping the upstream's own description) and
//! `implementation.url` becomes the public base. The gateway's own operations (`$validate`, `$verify`,
//! `$receipt`) are not listed in it.

use quick_xml::escape::escape;
use quick_xml::events::Event;
use serde_json::{Map, Value};

use super::xml::{self, XmlError};

/// The text put in `implementation.description`.
pub fn description(upstream: Option<&str>) -> String {
    let ours = concat!(
        "Served through Anchorgate ",
        env!("CARGO_PKG_VERSION"),
        " (FHIR gateway)"
    );
    match upstream {
        Some(d) if !d.is_empty() => format!("{d} — {ours}"),
        _ => ours.to_owned(),
    }
}

/// Marks a JSON CapabilityStatement; `None` when the body is not one.
pub fn mark_json(body: &[u8], public_base: &str) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let root = v.as_object_mut()?;
    if root.get("resourceType")?.as_str()? != "CapabilityStatement" {
        return None;
    }
    let implementation = root
        .entry("implementation")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()?;
    let upstream = implementation.get("description").and_then(Value::as_str);
    let desc = description(upstream);
    implementation.insert("description".into(), Value::String(desc));
    implementation.insert("url".into(), Value::String(public_base.to_owned()));
    serde_json::to_vec(&v).ok()
}

/// CapabilityStatement elements that follow `implementation`, in R4 order.
const AFTER_IMPLEMENTATION: &[&[u8]] = &[
    b"fhirVersion",
    b"format",
    b"patchFormat",
    b"implementationGuide",
    b"rest",
    b"messaging",
    b"document",
];

/// Marks an XML CapabilityStatement; `None` when the body is not one or cannot be read.
pub fn mark_xml(body: &[u8], public_base: &str) -> Result<Option<Vec<u8>>, XmlError> {
    let mut is_cs = false;
    let mut upstream_desc: Option<String> = None;
    let mut in_impl = false;
    xml::edit(body, |ev, depth| {
        match ev {
            Event::Start(t) | Event::Empty(t) if depth == 0 => {
                is_cs = t.local_name().as_ref() == b"CapabilityStatement"
            }
            Event::Start(t) if depth == 1 => in_impl = t.local_name().as_ref() == b"implementation",
            Event::End(_) if depth == 2 => in_impl = false,
            Event::Start(t) | Event::Empty(t)
                if depth == 2 && in_impl && t.local_name().as_ref() == b"description" =>
            {
                upstream_desc = value_attr(t);
            }
            _ => {}
        }
        None
    })?;
    if !is_cs {
        return Ok(None);
    }
    let desc = description(upstream_desc.as_deref());
    let ours = format!(
        "<description value=\"{}\"/><url value=\"{}\"/>",
        escape(desc.as_str()),
        escape(public_base)
    );
    let mut done = false;
    let mut skip_depth: Option<usize> = None; // inside an upstream description/url being dropped
    xml::edit(body, |ev, depth| {
        if let Some(d) = skip_depth {
            if depth == d && matches!(ev, Event::End(_)) {
                skip_depth = None;
            }
            return Some(Vec::new());
        }
        match ev {
            Event::Start(t) if depth == 1 && t.local_name().as_ref() == b"implementation" => {
                done = true;
                in_impl = true;
                Some([b"<", &**t, b">", ours.as_bytes()].concat())
            }
            Event::Empty(t) if depth == 1 && t.local_name().as_ref() == b"implementation" => {
                done = true;
                Some(format!("<implementation>{ours}</implementation>").into_bytes())
            }
            Event::End(_) if depth == 2 => {
                in_impl = false;
                None
            }
            Event::Start(t) | Event::Empty(t)
                if depth == 2
                    && in_impl
                    && matches!(t.local_name().as_ref(), b"description" | b"url") =>
            {
                if matches!(ev, Event::Start(_)) {
                    skip_depth = Some(depth + 1);
                }
                Some(Vec::new())
            }
            Event::Start(t) | Event::Empty(t)
                if depth == 1
                    && !done
                    && AFTER_IMPLEMENTATION.contains(&t.local_name().as_ref()) =>
            {
                done = true;
                let close: &[u8] = if matches!(ev, Event::Empty(_)) {
                    b"/>"
                } else {
                    b">"
                };
                Some(
                    [
                        format!("<implementation>{ours}</implementation><").as_bytes(),
                        &**t,
                        close,
                    ]
                    .concat(),
                )
            }
            Event::End(t) if depth == 1 && !done => {
                done = true;
                Some(
                    [
                        format!("<implementation>{ours}</implementation></").as_bytes(),
                        t.as_ref(),
                        b">",
                    ]
                    .concat(),
                )
            }
            _ => None,
        }
    })
}

fn value_attr(tag: &quick_xml::events::BytesStart<'_>) -> Option<String> {
    tag.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == b"value")
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_upstream_description() {
        let body = br#"{"resourceType":"CapabilityStatement","implementation":{"description":"EHR","url":"http://up/fhir"},"fhirVersion":"4.0.1"}"#;
        let out: Value =
            serde_json::from_slice(&mark_json(body, "http://gw/fhir").unwrap()).unwrap();
        assert_eq!(out["implementation"]["url"], "http://gw/fhir");
        assert!(out["implementation"]["description"]
            .as_str()
            .unwrap()
            .starts_with("EHR — Served through Anchorgate"));
        assert!(mark_json(br#"{"resourceType":"Patient"}"#, "x").is_none());
    }

    #[test]
    fn xml_replaces_or_inserts_implementation() {
        let with = br#"<CapabilityStatement xmlns="http://hl7.org/fhir"><status value="active"/><implementation><description value="EHR &amp; co"/><url value="http://up/fhir"/></implementation><fhirVersion value="4.0.1"/></CapabilityStatement>"#;
        let s = String::from_utf8(mark_xml(with, "http://gw/fhir").unwrap().unwrap()).unwrap();
        assert!(
            s.contains(
                "<implementation><description value=\"EHR &amp; co — Served through Anchorgate"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "<url value=\"http://gw/fhir\"/></implementation><fhirVersion value=\"4.0.1\"/>"
            ),
            "{s}"
        );
        assert!(!s.contains("http://up/fhir"));

        let without = br#"<CapabilityStatement xmlns="http://hl7.org/fhir"><status value="active"/><fhirVersion value="4.0.1"/></CapabilityStatement>"#;
        let s = String::from_utf8(mark_xml(without, "http://gw/fhir").unwrap().unwrap()).unwrap();
        assert!(s.contains("<status value=\"active\"/><implementation><description value=\"Served through Anchorgate"), "{s}");
        assert!(
            s.contains("</implementation><fhirVersion value=\"4.0.1\"/>"),
            "{s}"
        );
        assert_eq!(mark_xml(b"<Patient/>", "x").unwrap(), None);
    }
}
