//! Narrative XHTML (`Narrative.div`): well-formed XML, a `div` root, only the elements `txt-1` allows,
//! no event-handler attributes, only XML's own entities, and some content (`txt-2`).

use quick_xml::events::Event;
use quick_xml::Reader;

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
    for attr in t.attributes() {
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
