//! Rewriting base URLs inside a FHIR XML body, changing nothing else.
//!
//! Events are read with `quick-xml`, which never expands DTD entities; each event's byte span is known,
//! so untouched markup is copied byte for byte and only an edited tag is re-serialised.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::base::BaseMap;
use super::splice::Splice;

/// An XML body that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML: {0}")]
pub struct XmlError(String);

/// Runs `edit` over every event of `body`; where it returns bytes, they replace that event's markup.
///
/// `edit` gets the event and the number of elements open before it. Returns `Ok(None)` when no event was
/// replaced.
pub fn edit<F>(body: &[u8], mut edit: F) -> Result<Option<Vec<u8>>, XmlError>
where
    F: FnMut(&Event<'_>, usize) -> Option<Vec<u8>>,
{
    let text = std::str::from_utf8(body)
        .map_err(|e| XmlError(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut splice = Splice::new(body);
    let mut depth = 0usize;
    loop {
        let start = pos(&reader);
        let event = reader
            .read_event()
            .map_err(|e| XmlError(format!("at byte {start}: {e}")))?;
        let end = pos(&reader);
        if matches!(event, Event::Eof) {
            break;
        }
        if let Some(replacement) = edit(&event, depth) {
            splice.replace(start, end, &replacement);
        }
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(splice.finish())
}

fn pos(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

/// Rewrites every attribute value that is an absolute URL under `map`'s source base (FHIR XML keeps
/// primitive values in `value` attributes; narrative `href`s are covered too).
pub fn rewrite(body: &[u8], map: &BaseMap) -> Result<Option<Vec<u8>>, XmlError> {
    edit(body, |event, _| match event {
        Event::Start(tag) => rewrite_tag(tag, map, false),
        Event::Empty(tag) => rewrite_tag(tag, map, true),
        _ => None,
    })
}

fn rewrite_tag(tag: &BytesStart<'_>, map: &BaseMap, empty: bool) -> Option<Vec<u8>> {
    let mut changed = false;
    let mut attrs: Vec<(Vec<u8>, Cow<'_, [u8]>)> = Vec::new();
    for attr in tag.attributes().with_checks(false) {
        let attr = attr.ok()?;
        let value = attr.unescape_value().ok()?;
        let new = if value.len() >= 8 && value[..4].eq_ignore_ascii_case("http") {
            map.rewrite(&value)
        } else {
            None
        };
        match new {
            Some(v) => {
                changed = true;
                let escaped = quick_xml::escape::escape(v.as_str())
                    .into_owned()
                    .into_bytes();
                attrs.push((attr.key.as_ref().to_vec(), Cow::Owned(escaped)));
            }
            None => attrs.push((attr.key.as_ref().to_vec(), attr.value.clone())),
        }
    }
    changed.then(|| write_tag(tag.name().as_ref(), &attrs, empty))
}

/// Serialises a start or empty tag from its name and raw (already escaped) attribute values.
pub fn write_tag(name: &[u8], attrs: &[(Vec<u8>, Cow<'_, [u8]>)], empty: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(b'<');
    out.extend_from_slice(name);
    for (k, v) in attrs {
        // A raw value that holds `"` was written between single quotes; keep it that way.
        let q = if v.contains(&b'"') { b'\'' } else { b'"' };
        out.push(b' ');
        out.extend_from_slice(k);
        out.push(b'=');
        out.push(q);
        out.extend_from_slice(v);
        out.push(q);
    }
    out.extend_from_slice(if empty { b"/>" } else { b">" });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> BaseMap {
        crate::filter::base::test_map()
    }

    #[test]
    fn rewrites_value_attributes_only() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Bundle xmlns="http://hl7.org/fhir"><!-- c --><link><relation value="next"/><url value="http://up:8090/fhir/Patient?a=1&amp;b=2"></url></link>
<entry><fullUrl value='http://up:8090/fhir/Patient/1'/><resource><Patient><text><div xmlns="http://www.w3.org/1999/xhtml">see http://up:8090/fhir/x</div></text></Patient></resource></entry></Bundle>"#;
        let out = rewrite(body, &map()).unwrap().unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.contains(r#"<url value="http://gw/fhir/Patient?a=1&amp;b=2">"#),
            "{s}"
        );
        assert!(
            s.contains(r#"<fullUrl value="http://gw/fhir/Patient/1"/>"#),
            "{s}"
        );
        assert!(s.contains("see http://up:8090/fhir/x</div>"));
        assert!(s.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Bundle xmlns=\"http://hl7.org/fhir\"><!-- c -->"));
    }

    #[test]
    fn untouched_and_malformed() {
        assert_eq!(
            rewrite(br#"<Patient xmlns="http://hl7.org/fhir"/>"#, &map()).unwrap(),
            None
        );
        assert!(rewrite(b"<a><b></a>", &map()).is_err());
    }
}
