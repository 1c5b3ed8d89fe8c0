//! Internal hyperlinks in narrative (`<a href="#x">`): each must land on something in the resource (an
//! element's or a resource's `id`, or an `id` attribute or `<a name>` in its narrative XHTML) or, failing
//! that, in the enclosing Bundle, as the HL7 validator requires (`checkReferences`,
//! `TYPE_SPECIFIC_CHECKS_DT_XHTML_RESOLVE`).

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde_json::Value;

/// Whether `div` may hold an internal link at all: a cheap test that keeps the parse off the hot path.
pub fn may_link(div: &str) -> bool {
    div.contains("href=\"#") || div.contains("href='#")
}

/// The fragments of the internal links in `div` (`x` for `href="#x"`; a bare `#` links nowhere).
pub fn fragments(div: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_element(div, |t| {
        if t.local_name().as_ref() == b"a" {
            if let Some(f) =
                attribute(t, b"href").and_then(|h| h.strip_prefix('#').map(str::to_owned))
            {
                if !f.is_empty() {
                    out.push(f);
                }
            }
        }
    });
    out
}

/// Whether `fragment` names something in `scope` (a resource, or a Bundle with its entries).
pub fn resolves(fragment: &str, scope: &Value) -> bool {
    match scope {
        Value::Object(obj) => obj.iter().any(|(k, v)| match (k.as_str(), v) {
            ("id", Value::String(id)) => id == fragment,
            ("div", Value::String(div)) => div_has_target(div, fragment),
            _ => resolves(fragment, v),
        }),
        Value::Array(items) => items.iter().any(|x| resolves(fragment, x)),
        _ => false,
    }
}

/// Whether the XHTML has an element with `id="fragment"` or an `<a name="fragment">`.
fn div_has_target(div: &str, fragment: &str) -> bool {
    let mut found = false;
    for_each_element(div, |t| {
        found |= attribute(t, b"id").as_deref() == Some(fragment)
            || (t.local_name().as_ref() == b"a"
                && attribute(t, b"name").as_deref() == Some(fragment));
    });
    found
}

/// Calls `f` on every element start tag; malformed XHTML is the primitive check's business, so parsing
/// just stops there.
fn for_each_element(div: &str, mut f: impl FnMut(&BytesStart<'_>)) {
    let mut reader = Reader::from_str(div);
    loop {
        match reader.read_event() {
            Ok(Event::Start(t) | Event::Empty(t)) => f(&t),
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

fn attribute(t: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    crate::fhir::wellformed::attributes(t)
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// HL7 validator case `ab-list-slicing`: `#hcListExample/MyAppointmentExample` names nothing.
    #[test]
    fn links_resolve_to_ids_and_anchors() {
        let div = r##"<div xmlns="http://www.w3.org/1999/xhtml"><a name="top"> </a><p id="p1">x</p>
            <a href="#top">t</a><a href="#p1">p</a><a href="#c1">c</a><a href="#">n</a>
            <a href="#top/c1">bad</a><a href="http://x.org/#y">ext</a></div>"##;
        let list = json!({"resourceType": "List", "text": {"status": "generated", "div": div},
            "contained": [{"resourceType": "Device", "id": "c1"}]});
        assert!(may_link(div));
        let frags = fragments(div);
        assert_eq!(frags, ["top", "p1", "c1", "top/c1"]);
        let unresolved: Vec<&String> = frags.iter().filter(|f| !resolves(f, &list)).collect();
        assert_eq!(unresolved, ["top/c1"]);
    }
}
