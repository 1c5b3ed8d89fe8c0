//! Granular scope restrictions evaluated on a resource: FHIR token search semantics on top-level
//! code, Coding, CodeableConcept, Identifier and boolean elements (and `_tag`/`_security` on meta).
//!
//! Written here rather than with a FHIR search engine because only this small, fixed subset of token
//! matching is needed, and anything outside it must answer "no match" rather than guess.

use serde_json::Value;

use super::Restriction;

/// Whether `resource` matches every parameter of `restriction` (the patient context is not checked).
/// A parameter whose element is absent, of another kind, or carries a modifier does not match.
pub fn resource_matches(restriction: &Restriction, resource: &Value) -> bool {
    restriction
        .params
        .iter()
        .all(|(name, value)| param_matches(name, value, resource))
}

fn param_matches(name: &str, value: &str, resource: &Value) -> bool {
    let element = match name {
        "_tag" => resource.pointer("/meta/tag"),
        "_security" => resource.pointer("/meta/security"),
        n if n.contains(':') || n.starts_with('_') => return false,
        n => resource.get(camel_case(n)),
    };
    let Some(element) = element else {
        return false;
    };
    let alternatives = split_unescaped(value, ',');
    alternatives
        .iter()
        .any(|alt| element_matches(element, &Token::parse(alt)))
}

/// Search parameter names are kebab-case where element names are camelCase (`clinical-status` →
/// `clinicalStatus`).
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// One token search value.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// `code`: any system.
    Code(String),
    /// `system|code`, `|code` (system `""`: none) or `system|` (code `""`: any).
    SystemCode(String, String),
}

impl Token {
    fn parse(alt: &str) -> Self {
        let parts = split_unescaped(alt, '|');
        match parts.as_slice() {
            [code] => Token::Code(code.clone()),
            [system, code] => Token::SystemCode(system.clone(), code.clone()),
            // More than one unescaped bar: nothing can match it.
            _ => Token::SystemCode("\u{0}".into(), "\u{0}".into()),
        }
    }
}

fn element_matches(element: &Value, token: &Token) -> bool {
    match element {
        Value::Array(items) => items.iter().any(|i| element_matches(i, token)),
        // A `code` element's system is implicit in its definition, so only a bare code can match it.
        Value::String(code) => matches!(token, Token::Code(c) if c == code),
        Value::Bool(b) => matches!(token, Token::Code(c) if c == if *b { "true" } else { "false" }),
        Value::Object(obj) => {
            if let Some(codings) = obj.get("coding") {
                return element_matches(codings, token);
            }
            let system = obj.get("system").and_then(Value::as_str);
            let code = obj
                .get("code")
                .or_else(|| obj.get("value"))
                .and_then(Value::as_str);
            system_code_matches(system, code, token)
        }
        _ => false,
    }
}

fn system_code_matches(system: Option<&str>, code: Option<&str>, token: &Token) -> bool {
    match token {
        Token::Code(c) => code == Some(c.as_str()),
        Token::SystemCode(s, c) if s.is_empty() => system.is_none() && code == Some(c.as_str()),
        Token::SystemCode(s, c) if c.is_empty() => system == Some(s.as_str()),
        Token::SystemCode(s, c) => system == Some(s.as_str()) && code == Some(c.as_str()),
    }
}

/// Splits on `sep` where it is not escaped with `\` (FHIR search escaping), unescaping `\,`, `\|`,
/// `\$` and `\\`.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let last = parts.len() - 1;
        match c {
            '\\' => match chars.next() {
                Some(n) if n == sep => parts[last].push(n),
                Some(n) => {
                    // Keep other escapes for the next split level.
                    parts[last].push('\\');
                    parts[last].push(n);
                }
                None => parts[last].push('\\'),
            },
            c if c == sep => parts.push(String::new()),
            c => parts[last].push(c),
        }
    }
    if sep == '|' {
        for p in &mut parts {
            *p = p
                .replace("\\,", ",")
                .replace("\\$", "$")
                .replace("\\\\", "\\");
        }
    }
    parts
}
