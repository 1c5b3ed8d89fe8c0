//! Finding narrative XHTML (`<div xmlns="http://www.w3.org/1999/xhtml">`) in FHIR XML and JSON, in
//! document order, so it can be carried between the two forms byte for byte.

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::Value;

/// Byte spans of every outermost XHTML `div` element in `xml`, in document order.
pub fn spans(xml: &[u8]) -> Vec<(usize, usize)> {
    let Ok(text) = std::str::from_utf8(xml) else {
        return Vec::new();
    };
    let mut reader = Reader::from_str(text);
    let mut out = Vec::new();
    let mut open: Option<(usize, usize)> = None; // (start byte, depth of the div)
    let mut depth = 0usize;
    loop {
        let start = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let Ok(event) = reader.read_event() else {
            return out;
        };
        let end = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        match event {
            Event::Eof => return out,
            Event::Start(t) => {
                depth += 1;
                if open.is_none() && is_xhtml_div(&t) {
                    open = Some((start, depth));
                }
            }
            Event::Empty(t) if open.is_none() && is_xhtml_div(&t) => out.push((start, end)),
            Event::End(_) => {
                if let Some((s, d)) = open {
                    if d == depth {
                        out.push((s, end));
                        open = None;
                    }
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
}

fn is_xhtml_div(tag: &quick_xml::events::BytesStart<'_>) -> bool {
    tag.name().as_ref() == b"div"
        && crate::fhir::wellformed::attributes(tag).flatten().any(|a| {
            a.key.as_ref() == b"xmlns" && a.value.as_ref() == b"http://www.w3.org/1999/xhtml"
        })
}

/// Every narrative `div` string in a FHIR JSON value, in document order (member order, depth first),
/// which is the order FHIR XML writes them in.
pub fn json_divs(value: &mut Value) -> Vec<&mut String> {
    let mut out = Vec::new();
    collect(value, &mut out);
    out
}

fn collect<'a>(value: &'a mut Value, out: &mut Vec<&'a mut String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "div" && v.as_str().is_some_and(|s| s.starts_with("<div")) {
                    if let Value::String(s) = v {
                        out.push(s);
                    }
                } else {
                    collect(v, out);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| collect(v, out)),
        _ => {}
    }
}
