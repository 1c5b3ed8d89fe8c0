//! Bearer-token identity for every request to the FHIR base: JWT verification against configured
//! issuers, `jti` replay detection, SMART scopes, UDAP B2B organisation and purposes of use, and the
//! partner registry that places each organisation in a country.
//!
//! ```text
//! Authorization: Bearer <JWS> ──▶ verified-token cache (by SHA-256; a hit skips to the window)
//!   miss: jws::parse (alg policy, no keys from the header) ──▶ issuer (iss must be configured)
//!        ──▶ jwks (its keys: file, or URL cached + refreshed) ──▶ signature ──▶ claims (types, aud)
//!        ──▶ partner registry (country, allowed purposes)
//!   ──▶ time window (exp/nbf/iat with leeway) ──▶ X-Purpose-Of-Use (may only narrow)
//!   ──▶ jti replay ──▶ Principal
//! ```
//!
//! # Replay of `jti`
//!
//! RFC 7519's `jti` lets a recipient refuse a token it has seen, but an OAuth bearer access token is
//! *meant* to be presented on every request until it expires (RFC 6750), so "seen before" cannot mean
//! "refused" by default. The gateway therefore remembers, per issuer, each `jti` with the SHA-256 of
//! the whole token until the token expires (plus leeway), and by default (`replay = "reusable"`) refuses
//! only a *different* token carrying a `jti` already seen: an issuer never mints two tokens with one
//! `jti`, so that is a forgery attempt or a replay of a leaked identifier. Partners that mint a token per
//! request set `replay = "single-use"`, and then any second presentation is refused; `require_jti`
//! refuses tokens without one. The store is in memory, bounded (`replay_cache_capacity`; when full of
//! live tokens new ones are refused with 503 rather than forgetting one early), and sits behind
//! [`replay::ReplayCache`] so a shared store such as Redis can replace it when several gateways serve
//! one audience — with one in-memory store per gateway, a single-use token could be used once per
//! gateway.

pub mod config;
pub mod error;
pub mod keys;
pub mod partners;
pub mod principal;
pub mod purpose;
pub mod replay;
pub mod scopes;

mod claims;
mod jwks;
mod jws;
#[cfg(test)]
mod tests;
mod verified;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::HeaderMap;
use sha2::{Digest, Sha256};

pub use config::{IdentityConfig, IssuerConfig, ReplayMode};
pub use error::{AuthError, TokenProblem};
pub use jws::SigAlg;
pub use partners::{Partner, PartnerRegistry};
pub use principal::Principal;
pub use replay::{MemoryReplayCache, ReplayCache, TokenDigest};
pub use scopes::{Permission, ScopeDecision, Scopes};

use crate::config::ConfigError;
use jwks::{IssuerKeys, KeySet};
use verified::{Verified, VerifiedCache};

/// The request header naming the purpose of use a request acts under.
pub const PURPOSE_HEADER: &str = "x-purpose-of-use";

/// Checks the bearer token of each request and builds its [`Principal`].
#[derive(Debug)]
pub struct Authenticator {
    anonymous: bool,
    audience: Option<String>,
    leeway: u64,
    issuers: HashMap<String, Issuer>,
    partners: PartnerRegistry,
    replay: Arc<dyn ReplayCache>,
    verified: VerifiedCache,
}

#[derive(Debug)]
struct Issuer {
    keys: Arc<IssuerKeys>,
    replay: ReplayMode,
    require_jti: bool,
}

impl Authenticator {
    /// Builds the authenticator from `[identity]`: reads every JWKS file and the partner registry
    /// (JWKS URLs are fetched at first use, or by [`Self::prefetch_keys`]). The audience is
    /// `identity.audience`, else `public_base`; with issuers configured one of them must be set, since
    /// an audience taken from a request's `Host` would let tokens minted for another server in.
    pub fn new(cfg: &IdentityConfig, public_base: Option<&str>) -> Result<Self, ConfigError> {
        cfg.check()?;
        let audience = cfg
            .audience
            .clone()
            .or_else(|| public_base.map(str::to_owned));
        if audience.is_none() && !cfg.issuers.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "identity.audience",
                reason:
                    "set identity.audience or public_base: every token's aud must name this gateway"
                        .into(),
            });
        }
        let mut issuers = HashMap::new();
        for i in &cfg.issuers {
            let keys = match (&i.jwks_file, &i.jwks_url) {
                (Some(file), _) => {
                    IssuerKeys::from_set(KeySet::load_file(file).map_err(|reason| {
                        ConfigError::Invalid {
                            setting: "identity.issuers.jwks_file",
                            reason,
                        }
                    })?)
                }
                (None, Some(url)) => {
                    IssuerKeys::from_url(url.clone(), Duration::from_secs(i.refresh_secs)).map_err(
                        |reason| ConfigError::Invalid {
                            setting: "identity.issuers.jwks_url",
                            reason,
                        },
                    )?
                }
                // `check` requires exactly one.
                (None, None) => continue,
            };
            issuers.insert(
                i.issuer.clone(),
                Issuer {
                    keys: Arc::new(keys),
                    replay: i.replay,
                    require_jti: i.require_jti,
                },
            );
        }
        if cfg.anonymous {
            tracing::warn!("identity.anonymous is on: requests without a token pass as anonymous");
        }
        Ok(Self {
            anonymous: cfg.anonymous,
            audience,
            leeway: cfg.leeway_secs,
            issuers,
            partners: PartnerRegistry::load(cfg)?,
            replay: Arc::new(MemoryReplayCache::new(cfg.replay_cache_capacity)),
            verified: VerifiedCache::new(cfg.token_cache_capacity),
        })
    }

    /// Replaces the in-memory replay store (e.g. with a shared one).
    pub fn with_replay_cache(mut self, cache: Arc<dyn ReplayCache>) -> Self {
        self.replay = cache;
        self
    }

    /// Fetches every JWKS URL now (at start-up), so the first requests do not wait; failures are
    /// logged and retried at first use.
    pub async fn prefetch_keys(&self) {
        for issuer in self.issuers.values() {
            issuer.keys.fetch().await;
        }
    }

    /// The partner registry in use.
    pub fn partners(&self) -> &PartnerRegistry {
        &self.partners
    }

    /// The principal of a request, from its `Authorization` and `X-Purpose-Of-Use` headers, at
    /// `now_unix` (seconds). Errors map to 401 (no or bad token, with [`AuthError::www_authenticate`]),
    /// 400 (unreadable purpose header), 403 (a purpose or organisation the token does not allow) or
    /// 503 (the token cannot be checked now).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        now_unix: u64,
    ) -> Result<Principal, AuthError> {
        let Some(token) = bearer_token(headers)? else {
            if !self.anonymous {
                return Err(AuthError::MissingToken);
            }
            let mut p = Principal::anonymous();
            p.purpose = effective_purpose(headers, &p, &[])?;
            return Ok(p);
        };
        let digest: TokenDigest = Sha256::digest(token.as_bytes()).into();
        let verified = match self.verified.get(&digest) {
            Some(v) => {
                v.window.check(now_unix, self.leeway)?;
                v
            }
            None => {
                let v = Arc::new(self.verify(token, now_unix).await?);
                let until = v.window.exp.saturating_add(self.leeway);
                self.verified
                    .insert(digest, Arc::clone(&v), until, now_unix);
                v
            }
        };
        let mut principal = verified.principal.clone();
        principal.purpose = effective_purpose(headers, &principal, &verified.token_purposes)?;
        self.check_replay(digest, &principal, now_unix).await?;
        Ok(principal)
    }

    /// Everything about a token that does not change between its uses: algorithm, issuer,
    /// signature, claim types, audience, organisation; plus the time window at `now`.
    async fn verify(&self, token: &str, now: u64) -> Result<Verified, AuthError> {
        let unverified = jws::parse(token)?;
        let iss = match unverified.claims.get("iss") {
            None => return Err(TokenProblem::MissingIssuer.into()),
            Some(serde_json::Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(TokenProblem::ClaimType {
                    claim: "iss",
                    expected: "a string",
                }
                .into())
            }
        };
        let issuer = self
            .issuers
            .get(iss)
            .ok_or_else(|| TokenProblem::UntrustedIssuer(jws::truncate(iss)))?;
        let keys = issuer
            .keys
            .keys_for(unverified.kid.as_deref())
            .await
            .map_err(|_| {
                AuthError::Unavailable(format!(
                    "the signing keys of issuer {:?} could not be fetched; retry shortly",
                    jws::truncate(iss)
                ))
            })?;
        unverified.verify(&keys, iss)?;
        // Claims are only looked at once no one but the issuer can have chosen them.
        let audience = self.audience.as_deref().unwrap_or_default();
        let claims = claims::read(&unverified.claims, audience)?;
        claims.window.check(now, self.leeway)?;
        let window = claims.window;
        let mut principal = self.principal(iss, claims)?;
        let token_purposes = std::mem::take(&mut principal.purposes);
        principal.purposes = self.allowed_purposes(&principal, &token_purposes);
        Ok(Verified {
            principal,
            token_purposes,
            window,
        })
    }

    /// The principal's fields from the claims and the registry; `purposes` holds the token's
    /// (normalised) purposes.
    fn principal(&self, iss: &str, c: claims::Claims) -> Result<Principal, AuthError> {
        let partner = match &c.organization {
            None => None,
            Some(org) => Some(self.partners.get(org).ok_or_else(|| {
                AuthError::Forbidden(format!(
                    "organisation {:?} is not in the partner registry",
                    jws::truncate(org)
                ))
            })?),
        };
        let mut purposes: Vec<String> = Vec::new();
        for raw in &c.purposes {
            match purpose::normalise(raw) {
                Some(code) if !purposes.contains(&code) => purposes.push(code),
                Some(_) => {}
                None => tracing::debug!("token purpose is not a v3-ActReason code; ignored"),
            }
        }
        Ok(Principal {
            anonymous: false,
            issuer: Some(iss.to_owned()),
            subject: c.sub,
            client_id: c.client_id,
            fhir_user: c.fhir_user,
            scopes: Scopes::parse(c.scope.as_deref().unwrap_or_default()),
            launch_patient: c.patient,
            organization: c.organization,
            organization_display: partner.map(|p| p.display.clone()),
            country: partner.map(|p| p.country.clone()),
            purposes,
            purpose: None,
            jti: c.jti,
            expires_at: Some(c.window.exp),
        })
    }

    /// The token's purposes the registry allows its organisation; none without an organisation.
    fn allowed_purposes(&self, p: &Principal, token_purposes: &[String]) -> Vec<String> {
        let Some(partner) = p.organization.as_deref().and_then(|o| self.partners.get(o)) else {
            return Vec::new();
        };
        token_purposes
            .iter()
            .filter(|code| partner.purposes.contains(code))
            .cloned()
            .collect()
    }

    async fn check_replay(
        &self,
        digest: TokenDigest,
        p: &Principal,
        now: u64,
    ) -> Result<(), AuthError> {
        let iss = p.issuer.as_deref().unwrap_or_default();
        // A verified principal's issuer is configured; a missing one would be a bug, refused.
        let issuer = self
            .issuers
            .get(iss)
            .ok_or_else(|| TokenProblem::UntrustedIssuer(jws::truncate(iss)))?;
        let Some(jti) = p.jti.as_deref() else {
            if issuer.require_jti {
                return Err(TokenProblem::MissingJti(jws::truncate(iss)).into());
            }
            return Ok(());
        };
        // Remembered as long as the token could still be accepted, leeway included.
        let until = p.expires_at.unwrap_or(now).saturating_add(self.leeway);
        match self
            .replay
            .check_and_record(iss, jti, digest, until, now)
            .await
        {
            Ok(None) => Ok(()),
            Ok(Some(seen)) => match issuer.replay {
                ReplayMode::Reusable if seen == digest => Ok(()),
                ReplayMode::Reusable => {
                    Err(TokenProblem::Replayed("a different token of the same issuer").into())
                }
                ReplayMode::SingleUse => Err(TokenProblem::Replayed(
                    "an earlier request, and this issuer's tokens are single-use",
                )
                .into()),
            },
            Err(replay::CacheFull) => Err(AuthError::Unavailable(
                "too many live tokens are being tracked for replay; retry shortly".into(),
            )),
        }
    }
}

/// The bearer token of the `Authorization` header; `None` when there is no such header.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(
            TokenProblem::Malformed("the request has more than one Authorization header").into(),
        );
    }
    let value = value
        .to_str()
        .map_err(|_| TokenProblem::Malformed("the Authorization header is not visible ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(TokenProblem::Malformed("the Bearer credentials are empty").into());
    }
    Ok(Some(token))
}

/// The purpose the request acts under: the header's, which must be one of the principal's purposes;
/// else the principal's only purpose; else none.
fn effective_purpose(
    headers: &HeaderMap,
    p: &Principal,
    token_purposes: &[String],
) -> Result<Option<String>, AuthError> {
    let mut values = headers.get_all(PURPOSE_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(match p.purposes.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        });
    };
    if values.next().is_some() {
        return Err(AuthError::BadPurposeHeader(
            "send it once, naming one purpose".into(),
        ));
    }
    let raw = value
        .to_str()
        .map_err(|_| AuthError::BadPurposeHeader("it is not visible ASCII".into()))?;
    if raw.contains(',') || raw.trim().contains(' ') {
        return Err(AuthError::BadPurposeHeader(
            "it must name exactly one purpose".into(),
        ));
    }
    let code = purpose::normalise(raw).ok_or_else(|| {
        AuthError::BadPurposeHeader(format!(
            "{:?} is not a v3-ActReason code such as TREAT, urn:oid:2.16.840.1.113883.5.8#TREAT or http://terminology.hl7.org/CodeSystem/v3-ActReason|TREAT",
            jws::truncate(raw)
        ))
    })?;
    if p.purposes.contains(&code) {
        return Ok(Some(code));
    }
    if token_purposes.contains(&code) {
        return Err(AuthError::Forbidden(match p.organization.as_deref() {
            Some(org) => format!(
                "purpose {code} is granted by the token but not allowed for organisation {:?} by the partner registry",
                jws::truncate(org)
            ),
            None => format!(
                "purpose {code} is granted by the token, but a token without an organisation (extensions.hl7-b2b.organization_id) acts under no purpose"
            ),
        }));
    }
    let granted = if p.anonymous {
        "an anonymous request has none".to_owned()
    } else if p.purposes.is_empty() {
        "it grants none".to_owned()
    } else {
        format!("it grants {}", p.purposes.join(", "))
    };
    Err(AuthError::Forbidden(format!(
        "purpose {code} in X-Purpose-Of-Use is not granted by the token ({granted})"
    )))
}
