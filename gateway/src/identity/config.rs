//! The `[identity]` settings: trusted token issuers, audience, clock leeway, anonymous access and the
//! partner registry file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::ConfigError;

/// Largest clock leeway accepted: beyond five minutes an expired token lives on too long.
pub const MAX_LEEWAY_SECS: u64 = 300;
/// Shortest JWKS refresh interval accepted; also the least time between two fetches of one issuer's
/// JWKS, whatever triggers them (interval or unknown `kid`), so forged `kid`s cannot make the gateway
/// hammer an identity provider.
pub const MIN_REFRESH_SECS: u64 = 10;

/// Identity settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Let requests without an `Authorization` header through as an anonymous principal with no scopes
    /// and no purposes (which the policy layer then denies almost everything). A present but bad token
    /// is still refused. Off by default.
    pub anonymous: bool,
    /// The audience every token's `aud` must contain; default: the gateway's public FHIR base.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds (at most 300).
    pub leeway_secs: u64,
    /// The partner registry (organisation → country, display name, allowed purposes). Unset, the
    /// registry shipped in the repository's `policies/partners.toml` (compiled in) applies; a file
    /// named here must exist.
    pub partners_file: Option<PathBuf>,
    /// Most `jti`s remembered at once across issuers for replay detection. When every slot holds a
    /// live token, new tokens with a `jti` are refused (503) rather than forgetting one early.
    pub replay_cache_capacity: usize,
    /// Verified tokens remembered (by digest, until they expire) so a reused bearer token skips its
    /// signature check; 0 verifies every time.
    pub token_cache_capacity: usize,
    /// The trusted token issuers.
    pub issuers: Vec<IssuerConfig>,
}

/// One trusted issuer and where its verification keys come from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value of its tokens.
    pub issuer: String,
    /// A JWKS file holding its public keys (read at start-up).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (https, or http on a loopback address), fetched at first use, refreshed every
    /// `refresh_secs` and when a token names an unknown `kid`; a failed fetch keeps the last good keys.
    pub jwks_url: Option<Url>,
    /// Seconds between JWKS refreshes of `jwks_url` (default 300).
    #[serde(default = "default_refresh_secs")]
    pub refresh_secs: u64,
    /// How a repeated `jti` is treated.
    #[serde(default)]
    pub replay: ReplayMode,
    /// Refuse tokens without a `jti` from this issuer.
    #[serde(default)]
    pub require_jti: bool,
}

/// What a `jti` seen before means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayMode {
    /// Bearer access tokens are presented on every request (RFC 6750), so the same token may come
    /// again; a *different* token carrying a `jti` already seen from this issuer is a replay.
    #[default]
    Reusable,
    /// Every token is usable once: any second presentation of a `jti` is a replay. For partners that
    /// mint one token per request.
    SingleUse,
}

fn default_refresh_secs() -> u64 {
    300
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            anonymous: false,
            audience: None,
            leeway_secs: 30,
            partners_file: None,
            replay_cache_capacity: 100_000,
            token_cache_capacity: 10_000,
            issuers: Vec::new(),
        }
    }
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

impl IdentityConfig {
    /// Checks every value and loads every file it names (JWKS files, the partner registry), so a
    /// mistake stops the gateway before it binds.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(invalid(
                "identity.leeway_secs",
                format!(
                    "{} is above the maximum of {MAX_LEEWAY_SECS}",
                    self.leeway_secs
                ),
            ));
        }
        if self.replay_cache_capacity == 0 {
            return Err(invalid(
                "identity.replay_cache_capacity",
                "must be above zero",
            ));
        }
        if let Some(aud) = &self.audience {
            if aud.trim().is_empty() {
                return Err(invalid("identity.audience", "must not be empty"));
            }
        }
        for (i, issuer) in self.issuers.iter().enumerate() {
            if self.issuers[..i].iter().any(|o| o.issuer == issuer.issuer) {
                return Err(invalid(
                    "identity.issuers",
                    format!("issuer {:?} is configured twice", issuer.issuer),
                ));
            }
            issuer.check()?;
        }
        super::partners::PartnerRegistry::load(self)?;
        Ok(())
    }
}

impl IssuerConfig {
    fn check(&self) -> Result<(), ConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(invalid("identity.issuers.issuer", "must not be empty"));
        }
        match (&self.jwks_file, &self.jwks_url) {
            (Some(file), None) => {
                super::jwks::KeySet::load_file(file).map_err(|e| {
                    invalid(
                        "identity.issuers.jwks_file",
                        format!("issuer {:?}: {e}", self.issuer),
                    )
                })?;
            }
            (None, Some(url)) => check_jwks_url(url).map_err(|reason| {
                invalid(
                    "identity.issuers.jwks_url",
                    format!("issuer {:?}: {reason}", self.issuer),
                )
            })?,
            _ => {
                return Err(invalid(
                    "identity.issuers",
                    format!(
                        "issuer {:?} needs exactly one of jwks_file and jwks_url",
                        self.issuer
                    ),
                ))
            }
        }
        if !(MIN_REFRESH_SECS..=86_400).contains(&self.refresh_secs) {
            return Err(invalid(
                "identity.issuers.refresh_secs",
                format!(
                    "issuer {:?}: must be {MIN_REFRESH_SECS}..=86400",
                    self.issuer
                ),
            ));
        }
        Ok(())
    }
}

/// Keys fetched in clear text could be swapped by anyone on the path, so plain http is only for a
/// loopback identity provider (tests, a sidecar).
fn check_jwks_url(url: &Url) -> Result<(), String> {
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("{url}: needs a host")),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{url}: must be https (plain http only on a loopback address)"
        )),
    }
}
