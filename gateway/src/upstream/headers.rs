//! Header hygiene between client and upstream: hop-by-hop headers dropped both ways (RFC 9110 §7.6.1).

use http::header::{self, HeaderName};
use http::HeaderMap;

/// Headers that describe one connection, not the message, plus those the gateway sets itself.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// Removes hop-by-hop headers, including any named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// Prepares client request headers for the upstream.
///
/// `Host` is set by the client from the URI; `Accept-Encoding` is dropped so that bodies arrive
/// uncompressed and can be inspected; `Content-Length` is recomputed from the forwarded body.
pub fn for_upstream(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    headers.remove(header::HOST);
    headers.remove(header::ACCEPT_ENCODING);
    headers.remove(header::CONTENT_LENGTH);
    headers.remove("x-forwarded-for");
    headers.remove("x-forwarded-host");
    headers.remove("x-forwarded-proto");
    headers.remove(header::FORWARDED);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn strips_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"1\""));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        for_upstream(&mut h);
        assert!(h.get("x-secret").is_none());
        assert!(h.get(header::ACCEPT_ENCODING).is_none());
        assert_eq!(h[header::IF_MATCH], "W/\"1\"");
    }
}
