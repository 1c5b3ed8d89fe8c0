//! Normalising transcripts: base URL, server ids, nonce, instants and the gateway marking become placeholders.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::transcript::{Resp, Transcript};

/// Placeholder for the base URL of the side being normalised.
pub const BASE: &str = "{BASE}";

/// A normalised response body.
#[derive(Debug, Clone, PartialEq)]
pub enum NBody {
    /// No body.
    Empty,
    /// A JSON body (keys sorted).
    Json(Value),
    /// An XML body as normalised text.
    Xml(String),
    /// Any other body as normalised text.
    Text(String),
}

/// A normalised step: comparable between the upstream run and the gateway run.
#[derive(Debug, Clone, PartialEq)]
pub struct NStep {
    /// `METHOD target`, normalised.
    pub request: String,
    /// HTTP status.
    pub status: u16,
    /// Selected headers, normalised (`last-modified` only as `present`).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: NBody,
}

/// Replaces run-specific values by placeholders; server UUIDs are numbered in order of first
/// appearance, so the same id maps to the same placeholder throughout one transcript.
#[derive(Debug)]
pub struct Normalizer {
    base: String,
    literals: Vec<(String, String)>,
    uuids: HashMap<String, usize>,
    sort_entries: bool,
    /// Leave out each `Bundle.total` the gateway is documented to leave out (issue 17): set for the
    /// upstream's side, so that the gateway's keeping or dropping a total is still compared.
    withhold_totals: bool,
}

impl Normalizer {
    /// A normaliser for a transcript taken against `base` with `nonce`, plus check redactions.
    pub fn new(base: &str, nonce: &str, redactions: &[(String, String)]) -> Self {
        let mut literals = vec![(nonce.to_owned(), "<nonce>".to_owned())];
        literals.extend(redactions.iter().cloned());
        Normalizer {
            base: base.trim_end_matches('/').to_owned(),
            literals,
            uuids: HashMap::new(),
            sort_entries: false,
            withhold_totals: false,
        }
    }

    /// Normalises a piece of text (header value, request line, JSON string, XML document).
    pub fn text(&mut self, s: &str) -> String {
        let mut out = s.replace(&self.base, BASE);
        for (lit, ph) in &self.literals {
            out = out.replace(lit.as_str(), ph);
        }
        out = strip_marking(&out);
        self.number_uuids(&out)
    }

    fn number_uuids(&mut self, s: &str) -> String {
        let b = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        let mut copied = 0;
        while i + 36 <= b.len() {
            if is_uuid(&b[i..i + 36]) {
                let u = s[i..i + 36].to_ascii_lowercase();
                let next = self.uuids.len() + 1;
                let n = *self.uuids.entry(u).or_insert(next);
                out.push_str(&s[copied..i]);
                out.push_str(&format!("<id{n}>"));
                i += 36;
                copied = i;
            } else {
                i += 1;
            }
        }
        out.push_str(&s[copied..]);
        out
    }

    /// Normalises a JSON value: keys sorted, volatile elements replaced, strings normalised.
    pub fn json(&mut self, v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let rt = m.get("resourceType").and_then(Value::as_str).unwrap_or("");
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    let val = &m[k.as_str()];
                    // The gateway's documented addition to Bundle.entry.response.
                    if k == "extension" {
                        if let Some(items) = val.as_array() {
                            let kept: Vec<Value> = items
                                .iter()
                                .filter(|e| {
                                    e.get("url").and_then(Value::as_str) != Some(LEAF_EXTENSION)
                                })
                                .cloned()
                                .collect();
                            if kept.is_empty() {
                                continue;
                            }
                            out.insert(k.clone(), self.json(&Value::Array(kept)));
                            continue;
                        }
                    }
                    if rt == "Bundle" && k == "total" && self.withhold_totals && !total_shown(m) {
                        continue;
                    }
                    let volatile = matches!(
                        k.as_str(),
                        "lastUpdated" | "lastModified" | "transactionTime"
                    ) || (rt == "Bundle" && k == "timestamp")
                        || (rt == "CapabilityStatement" && k == "date");
                    let nv = if volatile && val.is_string() {
                        Value::String("<instant>".into())
                    } else if rt == "Bundle" && k == "id" && val.is_string() {
                        Value::String("<bundle-id>".into())
                    } else if rt == "Bundle" && k == "link" {
                        // Paging links are the server's own (the upstream's paging URLs; the
                        // gateway's principal-bound `_cursor` links): compared as present, and
                        // followed by the paging checks.
                        self.json(&paging_placeholders(val))
                    } else if rt == "Bundle" && k == "entry" && self.sort_entries {
                        self.json(&self.sorted_entries(val))
                    } else {
                        self.json(val)
                    };
                    let nk = self.text(k);
                    out.insert(nk, nv);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.json(x)).collect()),
            Value::String(s) => Value::String(self.text(s)),
            other => other.clone(),
        }
    }

    /// `entries` sorted by a run-independent key: each entry normalised on its own.
    fn sorted_entries(&self, entries: &Value) -> Value {
        let Some(list) = entries.as_array() else {
            return entries.clone();
        };
        let mut keyed: Vec<(String, Value)> = list
            .iter()
            .map(|e| {
                let mut alone = Normalizer {
                    base: self.base.clone(),
                    literals: self.literals.clone(),
                    uuids: HashMap::new(),
                    sort_entries: false,
                    withhold_totals: self.withhold_totals,
                };
                (alone.json(e).to_string(), e.clone())
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Array(keyed.into_iter().map(|(_, e)| e).collect())
    }

    /// `<entry>` elements of an XML Bundle sorted by their normalised text (see [`Call::unordered`]).
    ///
    /// [`Call::unordered`]: super::transcript::Call::unordered
    fn sorted_xml_entries(&self, s: &str) -> String {
        let mut spans = Vec::new();
        let (mut depth, mut start, mut i) = (0usize, 0usize, 0usize);
        while i < s.len() {
            let rest = &s[i..];
            if rest.starts_with("<entry>") {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
                i += "<entry>".len();
            } else if rest.starts_with("</entry>") {
                depth = depth.saturating_sub(1);
                i += "</entry>".len();
                if depth == 0 {
                    spans.push((start, i));
                }
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        let Some((first, last)) = spans.first().map(|f| f.0).zip(spans.last().map(|l| l.1)) else {
            return s.to_owned();
        };
        if spans.windows(2).any(|w| w[0].1 != w[1].0) {
            return s.to_owned(); // entries not contiguous: leave as is
        }
        let mut keyed: Vec<(String, &str)> = spans
            .iter()
            .map(|&(a, b)| {
                let mut alone = Normalizer {
                    base: self.base.clone(),
                    literals: self.literals.clone(),
                    uuids: HashMap::new(),
                    sort_entries: false,
                    withhold_totals: self.withhold_totals,
                };
                (alone.xml(&s[a..b]), &s[a..b])
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let body: String = keyed.into_iter().map(|(_, e)| e).collect();
        format!("{}{body}{}", &s[..first], &s[last..])
    }

    /// Normalises an XML document as text.
    pub fn xml(&mut self, s: &str) -> String {
        let sorted;
        let s = if self.sort_entries {
            sorted = self.sorted_xml_entries(s);
            sorted.as_str()
        } else {
            s
        };
        let mut t = strip_leaf_extension_xml(s);
        t = replace_values(&t, "<lastUpdated value=\"", "<instant>");
        t = replace_values(&t, "<lastModified value=\"", "<instant>");
        t = replace_values(&t, "<timestamp value=\"", "<instant>");
        t = replace_bundle_ids(&t);
        if t.contains("<CapabilityStatement") {
            if let Some(at) = t.find("<date value=\"") {
                let (head, tail) = t.split_at(at);
                t = format!(
                    "{head}{}",
                    replace_values_n(tail, "<date value=\"", "<instant>", 1)
                );
            }
        }
        self.text(&t)
    }

    /// Normalises one response.
    pub fn step(&mut self, request: &str, r: &Resp, unordered: bool) -> NStep {
        self.sort_entries = unordered;
        let request = self.text(request);
        let mut headers = Vec::new();
        for name in [
            "etag",
            "location",
            "content-location",
            "content-type",
            "last-modified",
        ] {
            if let Some(v) = r.header(name) {
                let v = match name {
                    "last-modified" => "present".to_owned(),
                    "content-type" => v
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase(),
                    _ => self.text(v),
                };
                headers.push((name.to_owned(), v));
            }
        }
        let mut extra: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-sekmet-"))
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        extra.sort();
        headers.extend(extra);
        let ct = r.header("content-type").unwrap_or("").to_ascii_lowercase();
        let body = if r.body.is_empty() {
            NBody::Empty
        } else if ct.contains("json") {
            match serde_json::from_slice::<Value>(&r.body) {
                Ok(v) => NBody::Json(self.json(&v)),
                Err(_) => NBody::Text(self.text(&String::from_utf8_lossy(&r.body))),
            }
        } else if ct.contains("xml") {
            // FHIR XML is compared as FHIR content (via the gateway's own XML reader, tested
            // against the R4 examples), not as text: serialisers differ in quotes and indentation.
            match anchorgate::fhir::parse::xml_to_json(&r.body) {
                Ok(v) => NBody::Json(self.json(&v)),
                Err(_) => NBody::Xml(self.xml(&String::from_utf8_lossy(&r.body))),
            }
        } else {
            NBody::Text(self.text(&String::from_utf8_lossy(&r.body)))
        };
        NStep {
            request,
            status: r.status,
            headers,
            body,
        }
    }
}

/// Normalises a whole transcript taken against `base` with `nonce`.
pub fn normalize(t: &Transcript, base: &str, nonce: &str) -> Vec<NStep> {
    normalize_as(Normalizer::new(base, nonce, &t.redactions), t)
}

/// Normalises the upstream's transcript as the gateway is documented to change it: a Bundle's
/// `total` is left out unless it counts exactly what the page shows (see [`total_shown`]).
pub fn normalize_upstream(t: &Transcript, base: &str, nonce: &str) -> Vec<NStep> {
    let mut n = Normalizer::new(base, nonce, &t.redactions);
    n.withhold_totals = true;
    normalize_as(n, t)
}

fn normalize_as(mut n: Normalizer, t: &Transcript) -> Vec<NStep> {
    t.steps
        .iter()
        .map(|s| n.step(&s.request, &s.resp, s.unordered))
        .collect()
}

fn is_uuid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// The extension the gateway adds to each anchored `Bundle.entry.response` (its ledger leaf index).
pub const LEAF_EXTENSION: &str =
    "https://anchorgate.dev/fhir/StructureDefinition/ledger-leaf-index";

/// Removes the gateway's leaf-index extensions from an XML document.
fn strip_leaf_extension_xml(s: &str) -> String {
    let open = format!("<extension url=\"{LEAF_EXTENSION}\">");
    const CLOSE: &str = "</extension>";
    let mut out = s.to_owned();
    while let Some(at) = out.find(&open) {
        match out[at..].find(CLOSE) {
            Some(e) => out.replace_range(at..at + e + CLOSE.len(), ""),
            None => break,
        }
    }
    out
}

/// Removes the gateway's CapabilityStatement marking from a description.
fn strip_marking(s: &str) -> String {
    const START: &str = " — Served through Anchorgate ";
    const END: &str = " (FHIR gateway)";
    let mut out = s.to_owned();
    while let Some(at) = out.find(START) {
        match out[at..].find(END) {
            Some(e) => out.replace_range(at..at + e + END.len(), ""),
            None => break,
        }
    }
    // a marking without an upstream description stands alone
    if let Some(rest) = out.strip_prefix("Served through Anchorgate ") {
        if let Some(e) = rest.find(END) {
            out = rest[e + END.len()..].to_owned();
        }
    }
    out
}

fn replace_values(s: &str, needle: &str, placeholder: &str) -> String {
    replace_values_n(s, needle, placeholder, usize::MAX)
}

/// Replaces the attribute value after each of the first `max` occurrences of `needle` (which ends
/// with the opening quote) by `placeholder`.
fn replace_values_n(s: &str, needle: &str, placeholder: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut done = 0;
    while done < max {
        let Some(at) = rest.find(needle) else { break };
        let start = at + needle.len();
        let Some(end) = rest[start..].find('"') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(placeholder);
        rest = &rest[start + end..];
        done += 1;
    }
    out.push_str(rest);
    out
}

/// Replaces `Bundle.id` in XML (`<Bundle …><id value="…"/>`) by a placeholder.
fn replace_bundle_ids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("<Bundle") {
        let Some(gt) = rest[at..].find('>') else {
            break;
        };
        let after = at + gt + 1;
        out.push_str(&rest[..after]);
        rest = &rest[after..];
        let trimmed = rest.trim_start();
        if let Some(v) = trimmed.strip_prefix("<id value=\"") {
            if let Some(end) = v.find('"') {
                out.push_str(&rest[..rest.len() - trimmed.len()]);
                out.push_str("<id value=\"<bundle-id>");
                rest = &v[end..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether the gateway passes this Bundle's `total` on (issue 17; FHIR R4 search: `total` counts
/// the matches of every page): only from a page with no `next` link whose match entries (search
/// mode `match`, or none) are exactly `total`. Written apart from the gateway's own rule, so that
/// the comparison checks it rather than repeats it.
fn total_shown(bundle: &Map<String, Value>) -> bool {
    let next = bundle
        .get("link")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|l| l["relation"] == "next");
    let matches = bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e.pointer("/search/mode").is_none_or(|m| m == "match"))
        .count();
    !next && bundle.get("total").and_then(Value::as_u64) == Some(matches as u64)
}

/// `Bundle.link` with every non-`self` URL replaced by a placeholder.
fn paging_placeholders(links: &Value) -> Value {
    let Some(list) = links.as_array() else {
        return links.clone();
    };
    Value::Array(
        list.iter()
            .map(|l| {
                let mut l = l.clone();
                if l.get("relation").and_then(Value::as_str) != Some("self")
                    && l.get("url").is_some()
                {
                    l["url"] = Value::String("<paging-link>".into());
                }
                l
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uuids_numbered_by_first_appearance() {
        let mut n = Normalizer::new("http://h:1/fhir", "agxyz", &[]);
        let a = "6a5c4461-23e0-45f2-8e14-c22b0529be0a";
        let b = "5af28e34-0000-45f2-8e14-c22b0529be0a";
        assert_eq!(
            n.text(&format!("http://h:1/fhir/Patient/{a} {b} {a} agxyz")),
            "{BASE}/Patient/<id1> <id2> <id1> <nonce>"
        );
    }

    #[test]
    fn json_volatile_fields() {
        let mut n = Normalizer::new("http://h:1/fhir", "agx", &[]);
        let v = json!({"resourceType":"Bundle","id":"6a5c4461-23e0-45f2-8e14-c22b0529be0a",
            "meta":{"lastUpdated":"2026-01-01T00:00:00Z"},"entry":[{"response":{"lastModified":"x"}}]});
        let out = n.json(&v);
        assert_eq!(out["id"], "<bundle-id>");
        assert_eq!(out["meta"]["lastUpdated"], "<instant>");
        assert_eq!(out["entry"][0]["response"]["lastModified"], "<instant>");
    }

    #[test]
    fn the_upstreams_totals_as_the_gateway_passes_them() {
        let page = |total: u64, next: bool| {
            let mut links = vec![json!({"relation": "self", "url": "http://h:1/fhir/Observation"})];
            if next {
                links.push(
                    json!({"relation": "next", "url": "http://h:1/fhir/Observation?_offset=2"}),
                );
            }
            json!({"resourceType": "Bundle", "total": total, "link": links, "entry": [
                {"resource": {"resourceType": "Observation", "id": "a"}, "search": {"mode": "match"}},
                {"resource": {"resourceType": "Patient", "id": "p"}, "search": {"mode": "include"}}]})
        };
        let mut up = Normalizer::new("http://h:1/fhir", "agx", &[]);
        up.withhold_totals = true;
        assert_eq!(up.json(&page(1, false))["total"], 1, "complete: kept");
        for (total, next) in [(1, true), (2, false), (0, false)] {
            let b = page(total, next);
            assert!(up.json(&b).get("total").is_none(), "{b}");
            let mut gw = Normalizer::new("http://h:1/fhir", "agx", &[]);
            assert_eq!(gw.json(&b)["total"], total, "the gateway's side as it is");
        }
        let count = json!({"resourceType": "Bundle", "type": "searchset", "total": 3});
        assert!(up.json(&count).get("total").is_none(), "_summary=count");
    }

    #[test]
    fn xml_volatile_fields() {
        let mut n = Normalizer::new("http://h:1/fhir", "agx", &[]);
        let x = r#"<Bundle xmlns="http://hl7.org/fhir"><id value="b1"/><meta><lastUpdated value="2026"/></meta><entry><resource><Bundle><id value="b2"/></Bundle></resource></entry></Bundle>"#;
        let out = n.xml(x);
        assert!(
            !out.contains("b1") && !out.contains("b2") && !out.contains("2026"),
            "{out}"
        );
        let cs = r#"<CapabilityStatement><date value="2026-11"/><implementation><description value="Up — Served through Anchorgate 0.1.0 (FHIR gateway)"/></implementation></CapabilityStatement>"#;
        let out = n.xml(cs);
        assert_eq!(
            out,
            r#"<CapabilityStatement><date value="<instant>"/><implementation><description value="Up"/></implementation></CapabilityStatement>"#
        );
    }

    #[test]
    fn marking_removed() {
        assert_eq!(
            strip_marking("Desc — Served through Anchorgate 0.1.0 (FHIR gateway)"),
            "Desc"
        );
        assert_eq!(
            strip_marking("Served through Anchorgate 0.1.0 (FHIR gateway)"),
            ""
        );
    }
}
