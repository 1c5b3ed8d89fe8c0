//! Rewriting base URLs in response headers: `Location`, `Content-Location` and `Link`.

use http::header::{CONTENT_LOCATION, LINK, LOCATION};
use http::{HeaderMap, HeaderValue};

use super::base::BaseMap;

/// Rewrites URL-bearing headers in place.
pub fn rewrite(headers: &mut HeaderMap, map: &BaseMap) {
    for name in [LOCATION, CONTENT_LOCATION] {
        let new = headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| map.rewrite(v.trim()))
            .and_then(|v| HeaderValue::from_str(&v).ok());
        if let Some(v) = new {
            headers.insert(name, v);
        }
    }
    let links: Vec<HeaderValue> = headers.get_all(LINK).iter().cloned().collect();
    if links.iter().any(|v| map.may_occur_in(v.as_bytes())) {
        headers.remove(LINK);
        for v in links {
            let new = v
                .to_str()
                .ok()
                .map(|s| rewrite_link(s, map))
                .and_then(|s| HeaderValue::from_str(&s).ok());
            headers.append(LINK, new.unwrap_or(v));
        }
    }
}

/// Rewrites each `<url>` target of an RFC 8288 `Link` header value.
fn rewrite_link(value: &str, map: &BaseMap) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let target = &rest[open + 1..open + close];
        out.push_str(&rest[..=open]);
        out.push_str(&map.rewrite(target).unwrap_or_else(|| target.to_owned()));
        out.push('>');
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    #[test]
    fn rewrites_location_and_link() {
        let map = BaseMap::new(&Url::parse("http://up:1/fhir").unwrap(), "https://gw/fhir");
        let mut h = HeaderMap::new();
        h.insert(
            LOCATION,
            HeaderValue::from_static("http://up:1/fhir/Patient/1/_history/1"),
        );
        h.insert(
            CONTENT_LOCATION,
            HeaderValue::from_static("Patient/1/_history/1"),
        );
        h.insert(
            LINK,
            HeaderValue::from_static(
                "<http://up:1/fhir/Patient?p=2>; rel=\"next\", <http://x/y>; rel=\"a\"",
            ),
        );
        rewrite(&mut h, &map);
        assert_eq!(h[LOCATION], "https://gw/fhir/Patient/1/_history/1");
        assert_eq!(h[CONTENT_LOCATION], "Patient/1/_history/1");
        assert_eq!(
            h[LINK],
            "<https://gw/fhir/Patient?p=2>; rel=\"next\", <http://x/y>; rel=\"a\""
        );
    }
}
