//! Narrative controls a profile sets on a Narrative element. `narrative-language-control`: language
//! sections (`<div lang="..">` children of the root `div`) prohibited (`_no`), required (`_yes`),
//! required for the resource's own language (`_resource`), or required for listed languages.
//! `narrative-source-control`: every top-level node says where it comes from with a `class` of
//! `boilerplate`, `generated` or `original`.

use serde_json::{Map, Value};

/// The extension's URL.
pub const LANGUAGE_CONTROL: &str =
    "http://hl7.org/fhir/StructureDefinition/narrative-language-control";

/// The source-control extension's URL.
pub const SOURCE_CONTROL: &str = "http://hl7.org/fhir/StructureDefinition/narrative-source-control";

/// Top-level nodes of the narrative `text` without a source class, described for a message (at most 5).
pub fn unsourced(text: &Value) -> Vec<String> {
    let Some(div) = text.get("div").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut reader = quick_xml::Reader::from_str(div);
    let (mut depth, mut out) = (0usize, Vec::new());
    let sourced = |e: &quick_xml::events::BytesStart<'_>| {
        crate::fhir::wellformed::attributes(e).flatten().any(|a| {
            a.key.as_ref() == b"class"
                && String::from_utf8_lossy(&a.value)
                    .split_whitespace()
                    .any(|c| matches!(c, "boilerplate" | "generated" | "original"))
        })
    };
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) => {
                if depth == 1 && !sourced(&e) {
                    out.push(format!(
                        "a <{}> element",
                        String::from_utf8_lossy(e.local_name().as_ref())
                    ));
                }
                depth += 1;
            }
            Ok(quick_xml::events::Event::Empty(e)) if depth == 1 && !sourced(&e) => {
                out.push(format!(
                    "a <{}> element",
                    String::from_utf8_lossy(e.local_name().as_ref())
                ));
            }
            Ok(quick_xml::events::Event::Text(t))
                if depth == 1 && !t.iter().all(u8::is_ascii_whitespace) =>
            {
                // Never the text itself: narrative can hold PHI.
                out.push("text outside any element".to_owned());
            }
            Ok(quick_xml::events::Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(quick_xml::events::Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out.truncate(5);
    out
}

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
    crate::fhir::wellformed::attributes(e)
        .flatten()
        .find_map(|a| {
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

    #[test]
    fn source_rules() {
        let t = text(
            r#"<div xmlns="http://www.w3.org/1999/xhtml"> loose <h1 class="boilerplate">a</h1><p>b</p><p class="x generated">c</p><br/></div>"#,
        );
        assert_eq!(
            unsourced(&t),
            [
                "text outside any element",
                "a <p> element",
                "a <br> element"
            ]
        );
        let ok = text(
            r#"<div xmlns="http://www.w3.org/1999/xhtml"> <p class="original">a <b>b</b></p> </div>"#,
        );
        assert!(unsourced(&ok).is_empty());
    }
}
