//! Rewriting base URLs inside a FHIR JSON body, changing nothing else.
//!
//! Hand-written rather than `serde_json::Value` round-tripping, for two reasons: a round trip re-formats
//! numbers (FHIR decimals such as `1.50` must keep their precision), reorders nothing but still re-emits
//! every byte; and this single pass over string tokens is several times faster than building a DOM. It
//! tokenises strings exactly (escapes included), so a URL is matched as a whole JSON string value, never
//! as a substring of some other text.

use super::base::BaseMap;
use super::splice::Splice;

/// A JSON body whose strings could not be tokenised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed JSON: {0}")]
pub struct JsonError(&'static str);

/// Rewrites every string value that is an absolute URL under `map`'s source base.
///
/// Returns `Ok(None)` when nothing needed rewriting, so the caller can keep the original bytes.
pub fn rewrite(body: &[u8], map: &BaseMap) -> Result<Option<Vec<u8>>, JsonError> {
    // Without `\u` or `\/` escapes anywhere, every absolute URL in a string is spelled with a literal
    // `://`, so looking only at those places is exact; otherwise tokenise every string.
    if !has_url_hiding_escape(body) {
        rewrite_at_schemes(body, map)
    } else {
        rewrite_all_strings(body, map)
    }
}

/// Whether any `\u` or `\/` escape occurs. One pass over backslashes, which FHIR JSON has few of.
fn has_url_hiding_escape(body: &[u8]) -> bool {
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'\\', &body[from..]) {
        let at = from + off;
        match body.get(at + 1) {
            Some(b'u' | b'/') => return true,
            _ => from = at + 2, // skip the escaped character, which may itself be a backslash
        }
        if from >= body.len() {
            break;
        }
    }
    false
}

/// The fast path: visits each `://`, and rewrites the string it belongs to when that string starts with
/// the source scheme. Several times faster than tokenising, since FHIR bodies hold far fewer URLs than
/// strings.
fn rewrite_at_schemes(body: &[u8], map: &BaseMap) -> Result<Option<Vec<u8>>, JsonError> {
    // Built once: constructing a searcher per body showed in profiles.
    static SEPARATOR: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"://"));
    let scheme = map.scheme().as_bytes();
    let mut splice = Splice::new(body);
    for hit in SEPARATOR.find_iter(body) {
        let Some(open) = hit.checked_sub(scheme.len() + 1) else {
            continue;
        };
        if open < splice.position()
            || body[open] != b'"'
            || !body[open + 1..hit].eq_ignore_ascii_case(scheme)
            || is_escaped(body, open)
        {
            continue;
        }
        let close = string_close(body, open + 1)?;
        replace_if_rewritten(&mut splice, body, open, close, map);
    }
    // An unterminated URL string fails in `string_close`; malformed JSON elsewhere is left to the
    // well-formedness checks, which request bodies pass before this runs.
    Ok(splice.finish())
}

/// Replaces the string token `body[open..=close]` when its value re-homes.
fn replace_if_rewritten(
    splice: &mut Splice<'_>,
    body: &[u8],
    open: usize,
    close: usize,
    map: &BaseMap,
) {
    let raw = &body[open + 1..close];
    if let Some(new) = rewrite_token(raw, map) {
        // serde_json writes a correctly escaped JSON string literal, quotes included.
        let literal = serde_json::to_string(&new).unwrap_or_default();
        splice.replace(open, close + 1, literal.as_bytes());
    }
}

/// The closing quote of a string whose content starts at `from`.
fn string_close(body: &[u8], from: usize) -> Result<usize, JsonError> {
    let mut j = from;
    loop {
        let off =
            memchr::memchr2(b'"', b'\\', &body[j..]).ok_or(JsonError("unterminated string"))?;
        j += off;
        if body[j] == b'"' {
            return Ok(j);
        }
        j += 2;
        if j > body.len() {
            return Err(JsonError("unterminated escape"));
        }
    }
}

/// The general path: tokenises every string, so escaped spellings of a URL are found too.
fn rewrite_all_strings(body: &[u8], map: &BaseMap) -> Result<Option<Vec<u8>>, JsonError> {
    let mut splice = Splice::new(body);
    // One vectorised pass finds every quote; unescaped quotes alternate between opening and closing a
    // string. This costs a few nanoseconds per string, where finding each string separately cost two
    // searches' set-up per string and dominated the profile.
    let mut quotes = memchr::memchr_iter(b'"', body).filter(|&q| !is_escaped(body, q));
    while let Some(open) = quotes.next() {
        let close = quotes.next().ok_or(JsonError("unterminated string"))?;
        let raw = &body[open + 1..close];
        if raw.len() < 8 {
            continue;
        }
        replace_if_rewritten(&mut splice, body, open, close, map);
    }
    Ok(splice.finish())
}

/// Whether the quote at `q` is escaped: preceded by an odd number of backslashes.
fn is_escaped(body: &[u8], q: usize) -> bool {
    body[..q].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

fn rewrite_token(raw: &[u8], map: &BaseMap) -> Option<String> {
    let escaped = memchr::memchr(b'\\', raw).is_some();
    if !escaped {
        // Fast path: an unescaped URL token starts with its scheme; skip everything else cheaply.
        if raw.len() < 8 || !raw[..4].eq_ignore_ascii_case(b"http") {
            return None;
        }
        return map.rewrite_bytes(raw);
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

    fn map() -> BaseMap {
        crate::filter::base::test_map()
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
    fn finds_only_real_url_hiding_escapes() {
        assert!(!has_url_hiding_escape(br#"{"a":"x\\u0041 \n \""}"#));
        assert!(has_url_hiding_escape(br#"{"a":"\u0068ttp"}"#));
        assert!(has_url_hiding_escape(br#"{"a":"http:\/\/x"}"#));
        assert!(!has_url_hiding_escape(b"\\"));
    }

    #[test]
    fn both_paths_agree() {
        let plain = br#"{"a":"http://up:8090/fhir/A","b":["x","HTTP://UP:8090/fhir?q=1"],"c":"say \"http://up:8090/fhir/B\"","d":"http://loinc.org"}"#;
        let fast = rewrite_at_schemes(plain, &map()).unwrap().unwrap();
        let slow = rewrite_all_strings(plain, &map()).unwrap().unwrap();
        assert_eq!(fast, slow);
        let s = String::from_utf8(fast).unwrap();
        assert!(
            s.contains(r#""a":"http://gw/fhir/A""#) && s.contains(r#""http://gw/fhir?q=1""#),
            "{s}"
        );
        assert!(s.contains(r#"say \"http://up:8090/fhir/B\""#), "{s}");
    }

    #[test]
    fn untouched_and_malformed() {
        assert_eq!(
            rewrite(br#"{"a":"http://other/fhir/x","b":"\\"}"#, &map()).unwrap(),
            None
        );
        // Only the tokenising path sees malformed strings anywhere; the fast path checks the URL strings
        // it touches. Request bodies are checked well-formed before either runs.
        assert!(rewrite_all_strings(br#"{"a":"unterminated}"#, &map()).is_err());
        assert!(rewrite_all_strings(br#"{"a":"x\"#, &map()).is_err());
        assert!(rewrite(br#"{"a":"http://up:8090/fhir/x}"#, &map()).is_err());
        assert_eq!(rewrite(b"", &map()).unwrap(), None);
    }
}
