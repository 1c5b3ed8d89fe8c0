//! The public FHIR base for one request: configured, or derived from `Host` and, only for trusted
//! proxies, `X-Forwarded-Proto`/`X-Forwarded-Host`.

use http::request::Parts;
use http::uri::Authority;

use super::ConnInfo;
use crate::error::GatewayError;
use crate::server::state::Gateway;

/// The public base URL (no trailing slash) that URLs in this request's answer must use.
pub fn resolve(gw: &Gateway, parts: &Parts, conn: &ConnInfo) -> Result<String, GatewayError> {
    if let Some(base) = &gw.public_base {
        return Ok(base.clone());
    }
    let trusted = gw.is_trusted_proxy(conn.peer.ip());
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or("").trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let proto = match trusted.then(|| header("x-forwarded-proto")).flatten() {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        Some(p) if p.eq_ignore_ascii_case("http") => "http",
        Some(_) => {
            return Err(GatewayError::bad_request(
                "X-Forwarded-Proto must be http or https",
                None,
            ))
        }
        None if conn.tls => "https",
        None => "http",
    };
    let host = trusted
        .then(|| header("x-forwarded-host"))
        .flatten()
        .or_else(|| header("host"))
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
        .ok_or_else(|| GatewayError::bad_request("the request has no Host", None))?;
    let authority: Authority = host.parse().map_err(|_| {
        GatewayError::bad_request("the Host header is not a valid host[:port]", None)
    })?;
    if authority.as_str().contains('@') {
        return Err(GatewayError::bad_request(
            "the Host header must not carry credentials",
            None,
        ));
    }
    Ok(format!("{proto}://{}{}", authority.as_str(), gw.fhir_path))
}
