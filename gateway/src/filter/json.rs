//! Rewriting base URLs inside a FHIR JSON body, changing nothing else.
//!
//! Hand-written rather than `serde_json::Value` round-tripping, for two reasons: a round trip re-formats
//! numbers (FHIR decimals such as `1.50` must keep their precision), reorders nothing but still re-emits
//! every byte; and this single pass over string tokens is several times faster than building a DOM. It
//! tokenises strings exactly (escapes included), so a URL is matched as a whole JSON string value, never
//! as a substring of some other text.

use super::base::BaseMap;

/// A JSON body whose strings could not be tokenised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed JSON: {0}")]
pub struct JsonError(&'static str);

/// Rewrites every string value that is an absolute URL under `map`'s source base.
///
/// Returns `Ok(None)` when nothing needed rewriting, so the caller can keep the original bytes.
pub fn rewrite(body: &[u8], map: &BaseMap) -> Result<Option<Vec<u8>>, JsonError> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0usize; // bytes of `body` already accounted for in `out`
    let mut i = 0usize;
    while let Some(off) = memchr::memchr(b'"', &body[i..]) {
        let start = i + off;
        let (end, escaped) = string_end(body, start + 1)?;
        let raw = &body[start + 1..end];
        if let Some(new) = rewrite_token(raw, escaped, map) {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 64));
            buf.extend_from_slice(&body[copied..start]);
            // serde_json writes a correctly escaped JSON string literal, quotes included.
            buf.extend_from_slice(serde_json::to_string(&new).unwrap_or_default().as_bytes());
            copied = end + 1;
        }
        i = end + 1;
    }
    Ok(out.map(|mut buf| {
        buf.extend_from_slice(&body[copied..]);
        buf
    }))
}

/// Finds the closing quote of a string whose content starts at `from`; also says if it holds escapes.
fn string_end(body: &[u8], from: usize) -> Result<(usize, bool), JsonError> {
    let mut j = from;
    let mut escaped = false;
    loop {
        let off =
            memchr::memchr2(b'"', b'\\', &body[j..]).ok_or(JsonError("unterminated string"))?;
        j += off;
        if body[j] == b'"' {
            return Ok((j, escaped));
        }
        escaped = true;
        j += 2; // skip the escaped character; `\uXXXX` continues with plain hex digits
        if j > body.len() {
            return Err(JsonError("unterminated escape"));
        }
    }
}

fn rewrite_token(raw: &[u8], escaped: bool, map: &BaseMap) -> Option<String> {
    if !escaped {
        // Fast path: an unescaped URL token starts with its scheme; skip everything else cheaply.
        if raw.len() < 8 || !raw[..4].eq_ignore_ascii_case(b"http") {
            return None;
        }
        return map.rewrite(std::str::from_utf8(raw).ok()?);
    }
    // Escaped text (`http:\/\/…` is legal JSON) is decoded properly before matching.
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    let decoded: String = serde_json::from_slice(&quoted).ok()?;
    map.rewrite(&decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    fn map() -> BaseMap {
        BaseMap::new(
            &Url::parse("http://up:8090/fhir").unwrap(),
            "http://gw/fhir",
        )
    }

    #[test]
    fn rewrites_only_url_values_and_keeps_other_bytes() {
        let body = br#"{"resourceType":"Bundle", "total" : 1.50,
  "link":[{"relation":"next","url":"http://up:8090/fhir/Patient?_page=2&a=\"q\""}],
  "entry":[{"fullUrl":"http:\/\/up:8090\/fhir\/Patient\/1","x":"see http://up:8090/fhir/Patient/1"}]}"#;
        let out = rewrite(body, &map()).unwrap().unwrap();
        let s = std::str::from_utf8(&out).unwrap();
        assert!(
            s.contains(r#""url":"http://gw/fhir/Patient?_page=2&a=\"q\"""#),
            "{s}"
        );
        assert!(s.contains(r#""fullUrl":"http://gw/fhir/Patient/1""#), "{s}");
        // Free text that merely mentions the URL is not a URL value.
        assert!(s.contains(r#""x":"see http://up:8090/fhir/Patient/1""#));
        assert!(s.contains(r#""total" : 1.50,"#));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["entry"][0]["fullUrl"], "http://gw/fhir/Patient/1");
    }

    #[test]
    fn untouched_and_malformed() {
        assert_eq!(
            rewrite(br#"{"a":"http://other/fhir/x","b":"\\"}"#, &map()).unwrap(),
            None
        );
        assert!(rewrite(br#"{"a":"unterminated}"#, &map()).is_err());
        assert!(rewrite(br#"{"a":"x\"#, &map()).is_err());
        assert_eq!(rewrite(b"", &map()).unwrap(), None);
    }
}
