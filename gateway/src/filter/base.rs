//! Base-URL mapping: recognising absolute URLs under one FHIR base and re-homing them under another.
//!
//! Matching is done by parsing the URL (scheme, host and port compared as the URL standard normalises
//! them; the path compared segment by segment), never by substring replacement. The part after the
//! base (path, query, fragment) is kept byte for byte, so nothing but the base changes.

use url::Url;

/// Maps absolute URLs under `from` to the same place under `to`.
#[derive(Debug, Clone)]
pub struct BaseMap {
    scheme: String,
    host: String,
    port: Option<u16>,
    /// `from`'s path without a trailing slash; empty for a root base.
    path: String,
    /// `to` without a trailing slash.
    to: String,
    /// Lowercase `host` or `host:port` as it may appear in text; a cheap pre-filter for whole bodies.
    needle: String,
}

impl BaseMap {
    /// A map from base `from` to base `to`.
    pub fn new(from: &Url, to: &str) -> Self {
        let host = from.host_str().unwrap_or_default().to_ascii_lowercase();
        let needle = match from.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        Self {
            scheme: from.scheme().to_owned(),
            port: from.port_or_known_default(),
            host,
            path: from.path().trim_end_matches('/').to_owned(),
            to: to.trim_end_matches('/').to_owned(),
            needle,
        }
    }

    /// The source base's scheme, lowercase.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The target base, without a trailing slash.
    pub fn target(&self) -> &str {
        &self.to
    }

    /// Whether `bytes` might hold a URL under the source base. `false` is certain; `true` needs a parse.
    pub fn may_occur_in(&self, bytes: &[u8]) -> bool {
        // Hosts compare case-insensitively, but every FHIR server we know writes its own base in the
        // case it was configured with; when it does not, the full parse below is still exact, so a
        // case-sensitive pre-filter only risks a missed rewrite, which the JSON and XML rewriters avoid
        // by always running on FHIR bodies. This is used only to skip work on header values.
        memchr::memmem::find(bytes, self.needle.as_bytes()).is_some()
    }

    /// `s` re-homed under the target base, or `None` when `s` is not an absolute URL under the source base.
    ///
    /// The URL is taken apart as RFC 3986 does (scheme, authority, host, port, path), without building a
    /// `url::Url`: most absolute URLs in FHIR bodies are terminology system URIs that fail at the scheme or
    /// host, and this keeps them to a few comparisons (see `benches/rewrite.rs`).
    pub fn rewrite(&self, s: &str) -> Option<String> {
        self.rewrite_bytes(s.as_bytes())
    }

    /// [`Self::rewrite`] on raw bytes; nothing is decoded or allocated until the base has matched.
    pub fn rewrite_bytes(&self, s: &[u8]) -> Option<String> {
        let scheme = self.scheme.as_bytes();
        if s.len() < scheme.len() + 3
            || !s[..scheme.len()].eq_ignore_ascii_case(scheme)
            || &s[scheme.len()..scheme.len() + 3] != b"://"
        {
            return None;
        }
        let after_scheme = &s[scheme.len() + 3..];
        let authority_len = after_scheme
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(after_scheme.len());
        let (authority, rest) = after_scheme.split_at(authority_len);
        if authority.contains(&b'@') {
            return None; // userinfo: never how a server names its own base
        }
        let (host, port) = split_host_port(authority)?;
        if !host.eq_ignore_ascii_case(self.host.as_bytes()) {
            return None;
        }
        let port = match port {
            None | Some(b"") => default_port(&self.scheme),
            Some(p) => std::str::from_utf8(p).ok()?.parse::<u16>().ok(),
        };
        if port != self.port {
            return None;
        }
        let remainder = rest.strip_prefix(self.path.as_bytes())?;
        if !(remainder.is_empty() || matches!(remainder[0], b'/' | b'?' | b'#')) {
            return None;
        }
        let remainder = std::str::from_utf8(remainder).ok()?;
        Some(format!("{}{}", self.to, remainder))
    }
}

/// Splits `host[:port]`, keeping IPv6 literals (`[::1]:80`) in their brackets as `url` reports them.
fn split_host_port(authority: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    if authority.first() == Some(&b'[') {
        let close = authority.iter().position(|&b| b == b']')?;
        let (host, tail) = authority.split_at(close + 1);
        return match tail.split_first() {
            Some((b':', p)) => Some((host, Some(p))),
            None => Some((host, None)),
            Some(_) => None,
        };
    }
    Some(match authority.iter().rposition(|&b| b == b':') {
        Some(i) => (&authority[..i], Some(&authority[i + 1..])),
        None => (authority, None),
    })
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The map the filter tests share: `http://up:8090/fhir` re-homed to `http://gw/fhir`.
#[cfg(test)]
pub(crate) fn test_map() -> BaseMap {
    BaseMap::new(
        &Url::parse("http://up:8090/fhir").unwrap_or_else(|_| unreachable!()),
        "http://gw/fhir",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> BaseMap {
        BaseMap::new(
            &Url::parse("http://10.0.0.5:8090/fhir").unwrap(),
            "https://gw.example.org/r4/",
        )
    }

    #[test]
    fn rewrites_under_base_only() {
        let m = map();
        assert_eq!(
            m.rewrite("http://10.0.0.5:8090/fhir/Patient/1/_history/2")
                .as_deref(),
            Some("https://gw.example.org/r4/Patient/1/_history/2")
        );
        assert_eq!(
            m.rewrite("http://10.0.0.5:8090/fhir?_getpages=abc&x=a%7Cb")
                .as_deref(),
            Some("https://gw.example.org/r4?_getpages=abc&x=a%7Cb")
        );
        assert_eq!(
            m.rewrite("http://10.0.0.5:8090/fhir").as_deref(),
            Some("https://gw.example.org/r4")
        );
        assert_eq!(
            m.rewrite("HTTP://10.0.0.5:8090/fhir/a").as_deref(),
            Some("https://gw.example.org/r4/a")
        );
        assert_eq!(m.rewrite("http://10.0.0.5:8090/fhirx/Patient"), None);
        assert_eq!(m.rewrite("http://10.0.0.5:8091/fhir/Patient"), None);
        assert_eq!(m.rewrite("https://10.0.0.5:8090/fhir/Patient"), None);
        assert_eq!(m.rewrite("http://10.0.0.50:8090/fhir/Patient"), None);
        assert_eq!(m.rewrite("Patient/1"), None);
        assert_eq!(m.rewrite("urn:uuid:1234"), None);
        assert_eq!(m.rewrite("http://user@10.0.0.5:8090/fhir/Patient"), None);
        assert_eq!(m.rewrite("http://10.0.0.5:x/fhir/Patient"), None);
        assert_eq!(m.rewrite("http://loinc.org"), None);
    }

    #[test]
    fn default_ports_and_root_bases() {
        let m = BaseMap::new(&Url::parse("http://ehr/").unwrap(), "http://gw:80/fhir");
        assert_eq!(
            m.rewrite("http://ehr:80/Patient").as_deref(),
            Some("http://gw:80/fhir/Patient")
        );
        assert_eq!(
            m.rewrite("http://EHR/Patient?a=b").as_deref(),
            Some("http://gw:80/fhir/Patient?a=b")
        );
    }
}
