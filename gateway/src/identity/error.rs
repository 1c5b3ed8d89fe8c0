//! Why a request's identity was refused, worded for an OperationOutcome diagnostic (never echoing
//! the token or identifying claim values), with its HTTP status and RFC 6750 challenge.

use http::{HeaderValue, StatusCode};

/// The realm named in every `WWW-Authenticate` challenge.
pub const REALM: &str = "anchorgate";

/// A refused identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization` header, and anonymous access is off.
    #[error("this request needs a bearer token: send Authorization: Bearer <JWT>")]
    MissingToken,
    /// An `Authorization` header with another scheme.
    #[error(
        "the Authorization header does not use the Bearer scheme; send Authorization: Bearer <JWT>"
    )]
    NotBearer,
    /// A token was presented and refused.
    #[error("the bearer token is refused: {0}")]
    InvalidToken(TokenProblem),
    /// The `X-Purpose-Of-Use` header cannot be read.
    #[error("the X-Purpose-Of-Use header is not usable: {0}")]
    BadPurposeHeader(String),
    /// The token is valid but does not allow what the request claims (a purpose beyond the token's,
    /// an organisation outside the partner registry).
    #[error("{0}")]
    Forbidden(String),
    /// The token cannot be checked right now (no keys for its issuer yet, replay cache full).
    #[error("{0}")]
    Unavailable(String),
}

/// What is wrong with a presented token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenProblem {
    /// Not a JWS compact serialisation, or a part that does not decode.
    #[error("it is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    /// Longer than the gateway accepts.
    #[error("it is longer than {0} bytes")]
    TooLong(usize),
    /// `alg: none`.
    #[error("its header says alg \"none\"; unsigned tokens are never accepted")]
    AlgNone,
    /// An HMAC algorithm: the gateway shares no secrets with issuers, and a public key must never be
    /// usable as an HMAC secret.
    #[error(
        "its alg {0} is symmetric (HMAC); only ES256, ES384, RS256, RS384 and EdDSA are accepted"
    )]
    Symmetric(String),
    /// Any other algorithm.
    #[error("its alg {0:?} is not accepted; only ES256, ES384, RS256, RS384 and EdDSA are")]
    UnsupportedAlg(String),
    /// A `crit` header parameter (RFC 7515 §4.1.11): extensions the gateway does not understand.
    #[error("its header lists critical extensions (crit) that are not understood")]
    Critical,
    /// A `typ` that is not an access-token JWT (e.g. a DPoP proof or an ID token type).
    #[error("its header typ {0:?} is not JWT or at+jwt")]
    WrongType(String),
    /// No `iss`.
    #[error("it has no iss claim")]
    MissingIssuer,
    /// `iss` is not a configured issuer.
    #[error("its issuer {0:?} is not trusted by this gateway")]
    UntrustedIssuer(String),
    /// `kid` names no key of the issuer, even after a JWKS refresh.
    #[error("its kid {kid:?} names no key of issuer {issuer:?}")]
    UnknownKid {
        /// The header `kid`.
        kid: String,
        /// The issuer.
        issuer: String,
    },
    /// The issuer has no key for the header's algorithm.
    #[error("issuer {issuer:?} has no key that verifies {alg}")]
    NoKeyForAlg {
        /// The header alg.
        alg: &'static str,
        /// The issuer.
        issuer: String,
    },
    /// The `kid` key's type or pinned alg does not allow the header's alg.
    #[error("its alg {alg} does not match key {kid:?}, which is {key} for {pinned}")]
    KeyMismatch {
        /// The header alg.
        alg: &'static str,
        /// The key's kid.
        kid: String,
        /// The key type, e.g. "an EC P-256 key".
        key: &'static str,
        /// What the key verifies.
        pinned: String,
    },
    /// The signature does not verify.
    #[error("its signature does not verify with {0}")]
    BadSignature(String),
    /// A registered or SMART claim of the wrong JSON type.
    #[error("its {claim} claim must be {expected}")]
    ClaimType {
        /// The claim.
        claim: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// No `exp`.
    #[error("it has no exp claim; tokens without an expiry are not accepted")]
    MissingExp,
    /// Past `exp` (plus leeway).
    #[error("it expired at {exp} (unix seconds), {ago} s ago (leeway {leeway} s)")]
    Expired {
        /// The `exp` claim.
        exp: u64,
        /// Seconds since.
        ago: u64,
        /// The leeway allowed.
        leeway: u64,
    },
    /// Before `nbf` (minus leeway).
    #[error("it is not valid before {nbf} (unix seconds), {wait} s from now (leeway {leeway} s)")]
    NotYetValid {
        /// The `nbf` claim.
        nbf: u64,
        /// Seconds until.
        wait: u64,
        /// The leeway allowed.
        leeway: u64,
    },
    /// `iat` in the future (beyond leeway).
    #[error("it was issued in the future: iat {iat} (unix seconds) is {ahead} s ahead (leeway {leeway} s)")]
    IssuedInFuture {
        /// The `iat` claim.
        iat: u64,
        /// Seconds ahead.
        ahead: u64,
        /// The leeway allowed.
        leeway: u64,
    },
    /// `aud` does not include the gateway.
    #[error("its aud does not include this gateway's audience {0:?}")]
    WrongAudience(String),
    /// The issuer requires `jti` and there is none.
    #[error("it has no jti claim, which issuer {0:?} requires")]
    MissingJti(String),
    /// A `jti` seen before, in a way the issuer's replay mode forbids.
    #[error("its jti was already used by {0}")]
    Replayed(&'static str),
}

impl AuthError {
    /// The HTTP status: 401 for missing or bad tokens, 400 for an unreadable purpose header, 403
    /// for a valid token that does not allow the request, 503 when it cannot be checked now.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::MissingToken | AuthError::NotBearer | AuthError::InvalidToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            AuthError::BadPurposeHeader(_) => StatusCode::BAD_REQUEST,
            AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `WWW-Authenticate` challenge of a 401 (RFC 6750 §3): a bare challenge when no token was
    /// presented, `error="invalid_token"` with a description when one was refused.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        let value = match self {
            AuthError::MissingToken | AuthError::NotBearer => format!("Bearer realm=\"{REALM}\""),
            AuthError::InvalidToken(p) => format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                quoted_string_safe(&p.to_string())
            ),
            _ => return None,
        };
        HeaderValue::from_str(&value).ok()
    }
}

/// RFC 6750 §3: error_description is limited to printable ASCII without `"` and `\`.
fn quoted_string_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if (' '..='~').contains(&c) => c,
            _ => '?',
        })
        .collect()
}

impl From<TokenProblem> for AuthError {
    fn from(p: TokenProblem) -> Self {
        AuthError::InvalidToken(p)
    }
}
