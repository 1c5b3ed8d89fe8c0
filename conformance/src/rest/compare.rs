//! Comparing normalised transcripts (the first difference, shown briefly) and finding leaked upstream URLs.

use serde_json::Value;

use super::normalize::{NBody, NStep};
use super::transcript::{snippet, Resp, Transcript};

/// The first difference between two normalised transcripts, as a short human-readable text.
pub fn first_difference(up: &[NStep], gw: &[NStep]) -> Option<String> {
    for (i, (a, b)) in up.iter().zip(gw.iter()).enumerate() {
        let at = format!("step {} `{}`", i + 1, a.request);
        if a.request != b.request {
            return Some(format!(
                "step {}: request differs\n- upstream: {}\n+ gateway:  {}",
                i + 1,
                a.request,
                b.request
            ));
        }
        if a.status != b.status {
            return Some(format!(
                "{at}: status\n- upstream: {}\n+ gateway:  {}",
                a.status, b.status
            ));
        }
        if a.headers != b.headers {
            return Some(header_diff(&at, &a.headers, &b.headers));
        }
        if a.body != b.body {
            return Some(format!("{at}: body {}", body_diff(&a.body, &b.body)));
        }
    }
    if up.len() != gw.len() {
        return Some(format!(
            "step count differs: upstream {}, gateway {}",
            up.len(),
            gw.len()
        ));
    }
    None
}

fn header_diff(at: &str, a: &[(String, String)], b: &[(String, String)]) -> String {
    let mut names: Vec<&String> = a.iter().chain(b.iter()).map(|(k, _)| k).collect();
    names.dedup();
    for name in names {
        let va = a.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let vb = b.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if va != vb {
            return format!(
                "{at}: header `{name}`\n- upstream: {}\n+ gateway:  {}",
                va.unwrap_or("(absent)"),
                vb.unwrap_or("(absent)")
            );
        }
    }
    format!("{at}: headers differ")
}

fn body_diff(a: &NBody, b: &NBody) -> String {
    match (a, b) {
        (NBody::Json(x), NBody::Json(y)) => {
            let (path, vx, vy) = json_diff("$", x, y).unwrap_or(("$".into(), None, None));
            format!(
                "at {path}\n- upstream: {}\n+ gateway:  {}",
                show(vx),
                show(vy)
            )
        }
        (NBody::Xml(x), NBody::Xml(y)) | (NBody::Text(x), NBody::Text(y)) => text_diff(x, y),
        _ => format!(
            "kind differs\n- upstream: {}\n+ gateway:  {}",
            kind(a),
            kind(b)
        ),
    }
}

fn kind(b: &NBody) -> String {
    match b {
        NBody::Empty => "empty".into(),
        NBody::Json(v) => format!("JSON {}", snippet(&v.to_string(), 120)),
        NBody::Xml(s) => format!("XML {}", snippet(s, 120)),
        NBody::Text(s) => format!("text {}", snippet(s, 120)),
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "(absent)".to_owned(), |v| snippet(&v.to_string(), 200))
}

type JsonDiff<'a> = (String, Option<&'a Value>, Option<&'a Value>);

fn json_diff<'a>(path: &str, a: &'a Value, b: &'a Value) -> Option<JsonDiff<'a>> {
    if a == b {
        return None;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = format!("{path}.{k}");
                match y.get(k) {
                    Some(vb) => {
                        if let Some(d) = json_diff(&p, va, vb) {
                            return Some(d);
                        }
                    }
                    None => return Some((p, Some(va), None)),
                }
            }
            y.iter()
                .find(|(k, _)| !x.contains_key(k.as_str()))
                .map(|(k, vb)| (format!("{path}.{k}"), None, Some(vb)))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (va, vb)) in x.iter().zip(y.iter()).enumerate() {
                if let Some(d) = json_diff(&format!("{path}[{i}]"), va, vb) {
                    return Some(d);
                }
            }
            let i = x.len().min(y.len());
            Some((format!("{path}[{i}]"), x.get(i), y.get(i)))
        }
        _ => Some((path.to_owned(), Some(a), Some(b))),
    }
}

fn text_diff(a: &str, b: &str) -> String {
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, ca), cb)| ca != cb)
        .map(|((i, _), _)| i)
        .unwrap_or_else(|| a.len().min(b.len()));
    let around = |s: &str| {
        let start = s[..at.min(s.len())]
            .char_indices()
            .rev()
            .nth(60)
            .map_or(0, |(i, _)| i);
        let tail: String = s[start..].chars().take(160).collect();
        tail
    };
    format!(
        "at character {at}\n- upstream: …{}\n+ gateway:  …{}",
        around(a),
        around(b)
    )
}

/// Text forms of the upstream base that must never reach a gateway client.
pub fn leak_markers(upstream_base: &str) -> Vec<String> {
    let trimmed = upstream_base.trim_end_matches('/');
    let authority_path = match url::Url::parse(trimmed) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{host}{port}{}", u.path().trim_end_matches('/'))
        }
        Err(_) => trimmed.to_owned(),
    };
    let mut m = vec![
        authority_path.clone(),
        authority_path.replace('/', "\\/"),
        authority_path.replace(':', "%3A").replace('/', "%2F"),
        authority_path.replace(':', "%3a").replace('/', "%2f"),
    ];
    m.dedup();
    m
}

/// Where a response shows the upstream base, if it does.
pub fn find_leak(r: &Resp, markers: &[String]) -> Option<String> {
    for (name, value) in &r.headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        if let Some(m) = markers.iter().find(|m| v.contains(m.as_str())) {
            return Some(format!(
                "`{}`: header `{name}` contains {m}: {}",
                r.request,
                snippet(&v, 160)
            ));
        }
    }
    let body = String::from_utf8_lossy(&r.body);
    for m in markers {
        if let Some(at) = body.find(m.as_str()) {
            let start = body[..at]
                .char_indices()
                .rev()
                .nth(60)
                .map_or(0, |(i, _)| i);
            let ctx: String = body[start..].chars().take(160).collect();
            return Some(format!("`{}`: body contains {m}: …{ctx}", r.request));
        }
    }
    None
}

/// The first leak in a transcript (recorded and unrecorded responses).
pub fn transcript_leak(t: &Transcript, markers: &[String]) -> Option<String> {
    t.steps
        .iter()
        .map(|s| &s.resp)
        .chain(t.unrecorded.iter())
        .find_map(|r| find_leak(r, markers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_diff_finds_path() {
        let a = json!({"a":[1,{"b":2}]});
        let b = json!({"a":[1,{"b":3}]});
        let (p, _, _) = json_diff("$", &a, &b).unwrap();
        assert_eq!(p, "$.a[1].b");
    }

    #[test]
    fn leak_markers_cover_encodings() {
        let m = leak_markers("http://127.0.0.1:18410/fhir/");
        assert!(m.contains(&"127.0.0.1:18410/fhir".to_owned()));
        assert!(m.contains(&"127.0.0.1%3A18410%2Ffhir".to_owned()));
    }
}
