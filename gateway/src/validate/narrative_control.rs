//! Narrative language control set by a profile (the `narrative-language-control` extension on a
//! Narrative element): language sections (`<div lang="..">` children of the narrative's root `div`)
//! prohibited (`_no`), required (`_yes`), required for the resource's own language (`_resource`), or
//! required for listed languages.

use serde_json::{Map, Value};

/// The extension's URL.
pub const LANGUAGE_CONTROL: &str =
    "http://hl7.org/fhir/StructureDefinition/narrative-language-control";

/// What `rule` (the extension's code) finds wrong with the narrative `text` of `resource`, if anything.
pub fn check(rule: &str, text: &Value, resource: &Map<String, Value>) -> Option<String> {
    let div = text.get("div").and_then(Value::as_str)?;
    let found = sections(div);
    let listed = || found.join(", ");
    match rule {
        "_no" if !found.is_empty() => Some(format!(
            "the narrative has language sections ({}), but the profile prohibits them here",
            listed()
        )),
        "_yes" if found.is_empty() => Some(
            "the narrative has no language sections, but the profile requires them here".into(),
        ),
        "_resource" => {
            let lang = resource.get("language").and_then(Value::as_str)?;
            (!found.iter().any(|l| l.eq_ignore_ascii_case(lang))).then(|| {
                format!(
                    "the profile requires a narrative section for the resource's language ({lang}), \
                     but it was not found (found {})",
                    listed()
                )
            })
        }
        "_no" | "_yes" => None,
        langs => {
            let missing: Vec<&str> = langs
                .split([' ', ','])
                .filter(|l| !l.is_empty() && !found.iter().any(|f| f.eq_ignore_ascii_case(l)))
                .collect();
            (!missing.is_empty()).then(|| {
                format!(
                    "the profile requires narrative sections for {}, not found (found {})",
                    missing.join(", "),
                    listed()
                )
            })
        }
    }
}

/// The `lang` (or `xml:lang`) of each `div` directly inside the narrative's root `div`.
fn sections(div: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(div);
    let mut depth = 0usize;
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) => {
                depth += 1;
                if depth == 2 && e.local_name().as_ref() == b"div" {
                    if let Some(l) = lang_of(&e) {
                        out.push(l);
                    }
                }
            }
            Ok(quick_xml::events::Event::Empty(e)) => {
                if depth == 1 && e.local_name().as_ref() == b"div" {
                    if let Some(l) = lang_of(&e) {
                        out.push(l);
                    }
                }
            }
            Ok(quick_xml::events::Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(quick_xml::events::Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out.dedup();
    out
}

fn lang_of(e: &quick_xml::events::BytesStart<'_>) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        let key = a.key.as_ref();
        (key == b"lang" || key == b"xml:lang")
            .then(|| String::from_utf8_lossy(&a.value).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(div: &str) -> Value {
        json!({"status": "generated", "div": div})
    }

    #[test]
    fn language_rules() {
        let two = text(
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><div xml:lang="pt" lang="pt">a</div><div lang="de">b</div></div>"#,
        );
        let none = text(r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>a</p></div>"#);
        let en = json!({"language": "en"});
        let en = en.as_object().unwrap();
        assert!(check("_no", &two, en).unwrap().contains("pt, de"));
        assert_eq!(check("_no", &none, en), None);
        assert!(check("_yes", &none, en).is_some());
        assert_eq!(check("_yes", &two, en), None);
        assert!(check("_resource", &two, en).unwrap().contains("(en)"));
        let de = json!({"language": "de"});
        assert_eq!(check("_resource", &two, de.as_object().unwrap()), None);
        assert!(check("fr", &two, en).is_some());
        assert_eq!(check("de pt", &two, en), None);
    }
}
