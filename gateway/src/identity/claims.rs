//! The claims of a verified token: audience and time window checks (RFC 7519 §4.1), and the SMART
//! and UDAP B2B claims read out of it.

use serde_json::{Map, Value};

use super::error::TokenProblem;
use super::jws::truncate;

/// The claims the gateway uses, type-checked.
#[derive(Debug, Default)]
pub struct Claims {
    pub sub: Option<String>,
    pub client_id: Option<String>,
    pub fhir_user: Option<String>,
    pub scope: Option<String>,
    pub patient: Option<String>,
    pub jti: Option<String>,
    pub window: Window,
    /// `extensions.hl7-b2b.organization_id`.
    pub organization: Option<String>,
    /// `extensions.hl7-b2b.purpose_of_use`, as written.
    pub purposes: Vec<String>,
}

/// When a token may be used: `exp`, `nbf`, `iat` (unix seconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub exp: u64,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
}

impl Window {
    /// Checks `exp`, `nbf` and `iat` against `now` with `leeway` (RFC 7519 §4.1.4-6).
    pub fn check(&self, now: u64, leeway: u64) -> Result<(), TokenProblem> {
        let exp = self.exp;
        // The token must not be accepted on or after exp.
        if now >= exp.saturating_add(leeway) {
            return Err(TokenProblem::Expired {
                exp,
                ago: now.saturating_sub(exp),
                leeway,
            });
        }
        if let Some(nbf) = self.nbf {
            if now.saturating_add(leeway) < nbf {
                return Err(TokenProblem::NotYetValid {
                    nbf,
                    wait: nbf - now,
                    leeway,
                });
            }
        }
        if let Some(iat) = self.iat {
            if iat > now.saturating_add(leeway) {
                return Err(TokenProblem::IssuedInFuture {
                    iat,
                    ahead: iat - now,
                    leeway,
                });
            }
        }
        Ok(())
    }
}

/// Reads the claims, type-checked, with `exp` required and `aud` containing `audience`; the time
/// window is [`Window::check`]'s.
pub fn read(claims: &Map<String, Value>, audience: &str) -> Result<Claims, TokenProblem> {
    let exp = numeric_date(claims, "exp")?.ok_or(TokenProblem::MissingExp)?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
    check_audience(claims.get("aud"), audience)?;
    let b2b = claims.get("extensions").map(|e| e.get("hl7-b2b"));
    let b2b = match b2b {
        None | Some(None) => None,
        Some(Some(Value::Object(o))) => Some(o),
        Some(Some(_)) => {
            return Err(TokenProblem::ClaimType {
                claim: "extensions.hl7-b2b",
                expected: "an object",
            })
        }
    };
    Ok(Claims {
        sub: string(claims, "sub")?,
        client_id: string(claims, "client_id")?,
        fhir_user: string(claims, "fhirUser")?,
        scope: string(claims, "scope")?,
        patient: string(claims, "patient")?,
        jti: string(claims, "jti")?,
        window: Window { exp, nbf, iat },
        organization: match b2b {
            Some(o) => string(o, "organization_id").map_err(|_| TokenProblem::ClaimType {
                claim: "extensions.hl7-b2b.organization_id",
                expected: "a string",
            })?,
            None => None,
        },
        purposes: match b2b.and_then(|o| o.get("purpose_of_use")) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(TokenProblem::ClaimType {
                    claim: "extensions.hl7-b2b.purpose_of_use",
                    expected: "an array of strings",
                })?,
            Some(_) => {
                return Err(TokenProblem::ClaimType {
                    claim: "extensions.hl7-b2b.purpose_of_use",
                    expected: "an array of strings",
                })
            }
        },
    })
}

/// A NumericDate: seconds since the epoch, possibly fractional (RFC 7519 §2), floored.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenProblem> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => Ok(Some(f as u64)),
                _ => Err(TokenProblem::ClaimType {
                    claim: name,
                    expected: "a non-negative NumericDate (seconds since 1970)",
                }),
            }
        }
        Some(_) => Err(TokenProblem::ClaimType {
            claim: name,
            expected: "a NumericDate number (seconds since 1970)",
        }),
    }
}

fn string(claims: &Map<String, Value>, name: &'static str) -> Result<Option<String>, TokenProblem> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenProblem::ClaimType {
            claim: name,
            expected: "a string",
        }),
    }
}

/// A trailing slash is not a different audience (`https://x/fhir` and `https://x/fhir/` name the
/// same base); anything else must match exactly.
fn same_audience(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn check_audience(aud: Option<&Value>, audience: &str) -> Result<(), TokenProblem> {
    let ok = match aud {
        Some(Value::String(a)) => same_audience(a, audience),
        Some(Value::Array(items)) => items
            .iter()
            .any(|a| a.as_str().is_some_and(|a| same_audience(a, audience))),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(TokenProblem::WrongAudience(truncate(audience)))
    }
}
