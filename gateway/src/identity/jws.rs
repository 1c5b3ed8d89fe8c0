//! A compact JWS access token taken apart before anything trusts it, and its signature checked
//! against an issuer's keys under a fixed algorithm policy.
//!
//! The header is read here rather than by `jsonwebtoken::decode_header` so that `alg: none`, HMAC
//! algorithms and `crit` get precise refusals, and so that nothing in the header (`jwk`, `jku`,
//! `x5u`) can ever choose the verification key: keys come only from the configured issuer's JWKS.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::error::TokenProblem;
use super::jwks::{KeySet, VerifyKey};

/// Longest token accepted; real access tokens are a few kilobytes at most.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The signature algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum SigAlg {
    /// ECDSA P-256 SHA-256.
    ES256,
    /// ECDSA P-384 SHA-384.
    ES384,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    RS384,
    /// Ed25519.
    EdDSA,
}

impl SigAlg {
    /// The JOSE name of an accepted algorithm.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "ES256" => SigAlg::ES256,
            "ES384" => SigAlg::ES384,
            "RS256" => SigAlg::RS256,
            "RS384" => SigAlg::RS384,
            "EdDSA" => SigAlg::EdDSA,
            _ => return None,
        })
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            SigAlg::ES256 => "ES256",
            SigAlg::ES384 => "ES384",
            SigAlg::RS256 => "RS256",
            SigAlg::RS384 => "RS384",
            SigAlg::EdDSA => "EdDSA",
        }
    }

    /// The jsonwebtoken algorithm.
    pub fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            SigAlg::ES256 => jsonwebtoken::Algorithm::ES256,
            SigAlg::ES384 => jsonwebtoken::Algorithm::ES384,
            SigAlg::RS256 => jsonwebtoken::Algorithm::RS256,
            SigAlg::RS384 => jsonwebtoken::Algorithm::RS384,
            SigAlg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

/// A token split and decoded, signature not yet checked.
#[derive(Debug)]
pub struct Unverified<'a> {
    /// The header's algorithm, already known to be accepted.
    pub alg: SigAlg,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The claims object.
    pub claims: Map<String, Value>,
    /// `header.payload`, the signed bytes.
    signing_input: &'a str,
    /// The base64url signature.
    signature: &'a str,
}

/// Splits and decodes `token`, refusing anything but an accepted algorithm.
pub fn parse(token: &str) -> Result<Unverified<'_>, TokenProblem> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenProblem::TooLong(MAX_TOKEN_BYTES));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenProblem::Malformed(
            "a JWS compact serialisation has three base64url parts separated by dots (an encrypted JWE has five and is not accepted)",
        ));
    };
    let header = decode_object(h).ok_or(TokenProblem::Malformed(
        "its header is not base64url-encoded JSON object",
    ))?;
    let alg = check_header(&header)?;
    let claims = decode_object(p).ok_or(TokenProblem::Malformed(
        "its payload is not a base64url-encoded JSON object",
    ))?;
    if s.is_empty() {
        return Err(TokenProblem::Malformed("it has no signature"));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(TokenProblem::Malformed("its header kid is not a string")),
    };
    Ok(Unverified {
        alg,
        kid,
        claims,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature: s,
    })
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn check_header(header: &Map<String, Value>) -> Result<SigAlg, TokenProblem> {
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.as_str(),
        _ => return Err(TokenProblem::Malformed("its header has no alg string")),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenProblem::AlgNone);
    }
    if alg.len() >= 2 && alg[..2].eq_ignore_ascii_case("HS") {
        return Err(TokenProblem::Symmetric(truncate(alg)));
    }
    let alg = SigAlg::from_name(alg).ok_or_else(|| TokenProblem::UnsupportedAlg(truncate(alg)))?;
    if header.contains_key("crit") {
        return Err(TokenProblem::Critical);
    }
    if let Some(typ) = header.get("typ") {
        let ok = typ.as_str().is_some_and(|t| {
            ["JWT", "at+jwt", "application/at+jwt"]
                .iter()
                .any(|a| t.eq_ignore_ascii_case(a))
        });
        if !ok {
            return Err(TokenProblem::WrongType(truncate(
                &typ.as_str().map_or_else(|| typ.to_string(), str::to_owned),
            )));
        }
    }
    Ok(alg)
}

/// Attacker-chosen text is echoed in diagnostics at most this long.
pub fn truncate(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Unverified<'_> {
    /// Checks the signature with the issuer's keys: the `kid` key when the header names one (its
    /// type and pinned alg must fit the header's alg), otherwise every key that fits the alg.
    pub fn verify(&self, keys: &KeySet, issuer: &str) -> Result<(), TokenProblem> {
        let alg = self.alg;
        if let Some(kid) = &self.kid {
            let key = keys
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                .ok_or_else(|| TokenProblem::UnknownKid {
                    kid: truncate(kid),
                    issuer: truncate(issuer),
                })?;
            if !fits(key, alg) {
                return Err(TokenProblem::KeyMismatch {
                    alg: alg.name(),
                    kid: truncate(kid),
                    key: key.kind.describe(),
                    pinned: key.alg.map_or_else(
                        || "its own curve or type".to_owned(),
                        |a| a.name().to_owned(),
                    ),
                });
            }
            return if self.check_with(key) {
                Ok(())
            } else {
                Err(TokenProblem::BadSignature(format!(
                    "key {:?}",
                    truncate(kid)
                )))
            };
        }
        let mut candidates = keys.keys.iter().filter(|k| fits(k, alg)).peekable();
        if candidates.peek().is_none() {
            return Err(TokenProblem::NoKeyForAlg {
                alg: alg.name(),
                issuer: truncate(issuer),
            });
        }
        if candidates.any(|k| self.check_with(k)) {
            Ok(())
        } else {
            Err(TokenProblem::BadSignature(format!(
                "any {} key of issuer {:?}",
                alg.name(),
                truncate(issuer)
            )))
        }
    }

    fn check_with(&self, key: &VerifyKey) -> bool {
        // `fits` has matched the key's family to the alg, which jsonwebtoken relies on (a mismatched
        // family reaches an `unreachable!` inside it).
        jsonwebtoken::crypto::verify(
            self.signature,
            self.signing_input.as_bytes(),
            &key.key,
            self.alg.jwt(),
        )
        .unwrap_or(false)
    }
}

fn fits(key: &VerifyKey, alg: SigAlg) -> bool {
    key.kind.fits(alg) && key.alg.is_none_or(|a| a == alg)
}
