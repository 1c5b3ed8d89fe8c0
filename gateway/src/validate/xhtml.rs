//! Narrative XHTML (`Narrative.div`): well-formed XML, a `div` root, only the elements `txt-1` allows,
//! no event-handler attributes, only XML's own entities, and some content (`txt-2`).

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::fhir::wellformed::{self, Refused};

/// Most attributes on one narrative element (the XML gate's default `limits.max_xml_attributes`): a
/// narrative in JSON never passed that gate, and real XHTML carries a handful.
const MAX_ATTRIBUTES: usize = 64;

/// Elements that R4's `txt-1` allows in narrative.
const ALLOWED: &[&str] = &[
    "p",
    "br",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "span",
    "b",
    "em",
    "i",
    "strong",
    "small",
    "big",
    "tt",
    "dfn",
    "q",
    "var",
    "abbr",
    "acronym",
    "cite",
    "blockquote",
    "hr",
    "address",
    "bdo",
    "kbd",
    "sub",
    "sup",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "pre",
    "table",
    "caption",
    "colgroup",
    "col",
    "thead",
    "tr",
    "tfoot",
    "tbody",
    "th",
    "td",
    "code",
    "samp",
    "img",
    "map",
    "area",
];

/// Checks one narrative `div`; the error names the rule, never the text.
pub fn check(div: &str) -> Result<(), String> {
    if !div.trim_start().starts_with("<div") {
        return Err("the narrative must be an XHTML div element".into());
    }
    let mut reader = Reader::from_str(div);
    reader.config_mut().check_end_names = true;
    let mut content = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("the narrative XHTML is not well-formed: {e}"))?;
        match event {
            Event::Eof => break,
            Event::Start(t) | Event::Empty(t) => {
                check_element(&t)?;
                content |= t.local_name().as_ref() == b"img";
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|_| {
                    "the narrative XHTML uses an entity XML does not define".to_string()
                })?;
                content |= !text.trim().is_empty();
            }
            Event::DocType(_) => return Err("the narrative XHTML has a DOCTYPE".into()),
            Event::CData(t) => content |= !t.trim_ascii().is_empty(),
            _ => {}
        }
    }
    if !content {
        return Err("txt-2: the narrative SHALL have some non-whitespace content".into());
    }
    Ok(())
}

/// Element name and attributes: allowed element, no `on*` handlers, attribute values unescape.
fn check_element(t: &quick_xml::events::BytesStart<'_>) -> Result<(), String> {
    let name = t.local_name();
    let name = std::str::from_utf8(name.as_ref()).unwrap_or("");
    if !ALLOWED.contains(&name) {
        return Err(format!(
            "the narrative XHTML uses the element '{name}', which is not allowed (txt-1)"
        ));
    }
    // Checked linearly first: quick-xml's own check is quadratic in the attributes of an element.
    match wellformed::check_attributes(t, MAX_ATTRIBUTES) {
        Ok(_) => {}
        Err(Refused::TooCostly(_)) => {
            return Err(format!(
                "the narrative XHTML has an element with more than {MAX_ATTRIBUTES} attributes"
            ))
        }
        Err(e) => return Err(format!("the narrative XHTML is not well-formed: {e}")),
    }
    for attr in wellformed::attributes(t) {
        let attr = attr.map_err(|e| format!("the narrative XHTML is not well-formed: {e}"))?;
        let key = attr.key.local_name();
        let key = key.as_ref();
        if key.len() > 2 && key[..2].eq_ignore_ascii_case(b"on") {
            return Err("the narrative XHTML has an event-handler attribute (txt-1)".into());
        }
        attr.unescape_value()
            .map_err(|_| "the narrative XHTML uses an entity XML does not define".to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A narrative whose `p` has `n` attributes (distinct unless `repeat`).
    fn with_attributes(n: usize, repeat: bool) -> String {
        let attrs: String = (0..n)
            .map(|i| format!(" a{}=\"\"", if repeat { 0 } else { i }))
            .collect();
        format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p{attrs}>x</p></div>")
    }

    #[test]
    fn attributes_are_checked_in_linear_time() {
        assert_eq!(check(&with_attributes(MAX_ATTRIBUTES - 1, false)), Ok(()));
        let e = check(&with_attributes(2, true)).unwrap_err();
        assert!(
            e.contains("not well-formed") && e.contains("repeated"),
            "{e}"
        );
        // 1 MiB, FHIR's string limit, of attributes on one element: refused at the 65th, where
        // quick-xml's own duplicate check would compare each with every earlier one.
        let started = std::time::Instant::now();
        let e = check(&with_attributes(100_000, false)).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(
            e,
            "the narrative XHTML has an element with more than 64 attributes"
        );
    }
}
