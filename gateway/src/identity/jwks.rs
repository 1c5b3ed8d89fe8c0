//! Issuers' public keys: JWKS parsing into verification keys, and the per-issuer cache that loads a
//! file once or fetches a URL, refreshed on an interval and on an unknown `kid`, rate-limited, keeping
//! the last good keys when a fetch fails.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::DecodingKey;
use tokio::time::Instant;
use url::Url;

use super::jws::SigAlg;

/// Largest JWKS document accepted from a URL.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Time a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// RSA moduli below 2048 bits are refused (ring refuses to verify with them anyway).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// What a verification key is, which decides the one or two algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// EC on P-256: ES256.
    EcP256,
    /// EC on P-384: ES384.
    EcP384,
    /// OKP Ed25519: EdDSA.
    Ed25519,
    /// RSA: RS256 or RS384.
    Rsa,
}

impl KeyKind {
    /// Whether a key of this kind may verify `alg` (RFC 7518 §3.1: the curve fixes the hash).
    pub fn fits(self, alg: SigAlg) -> bool {
        matches!(
            (self, alg),
            (KeyKind::EcP256, SigAlg::ES256)
                | (KeyKind::EcP384, SigAlg::ES384)
                | (KeyKind::Ed25519, SigAlg::EdDSA)
                | (KeyKind::Rsa, SigAlg::RS256 | SigAlg::RS384)
        )
    }

    /// A name for messages.
    pub fn describe(self) -> &'static str {
        match self {
            KeyKind::EcP256 => "an EC P-256 key",
            KeyKind::EcP384 => "an EC P-384 key",
            KeyKind::Ed25519 => "an Ed25519 key",
            KeyKind::Rsa => "an RSA key",
        }
    }
}

/// One public key usable for verification.
#[derive(Clone)]
pub struct VerifyKey {
    /// The JWK `kid`.
    pub kid: Option<String>,
    /// The key type and curve.
    pub kind: KeyKind,
    /// The JWK `alg`, when it pins one.
    pub alg: Option<SigAlg>,
    /// The key for jsonwebtoken.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The usable keys of one JWKS document.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// Keys in document order.
    pub keys: Vec<VerifyKey>,
}

impl KeySet {
    /// Parses a JWKS document. Keys that cannot verify JWS (encryption keys, symmetric keys, private
    /// keys, unknown types, short RSA moduli) are skipped with the reason logged, so one odd key at an
    /// identity provider does not disable the others; a document with no usable key is an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not a JSON document: {e}"))?;
        let Some(keys) = doc.get("keys").and_then(|k| k.as_array()) else {
            return Err("not a JWK Set: no \"keys\" array (RFC 7517 §5)".into());
        };
        let mut set = KeySet::default();
        for (i, jwk) in keys.iter().enumerate() {
            match verify_key(jwk) {
                Ok(k) => set.keys.push(k),
                Err(why) => tracing::warn!(key = i, reason = %why, "JWKS key skipped"),
            }
        }
        if set.keys.is_empty() {
            return Err(format!(
                "none of its {} keys can verify ES256, ES384, RS256, RS384 or EdDSA signatures",
                keys.len()
            ));
        }
        Ok(set)
    }

    /// Reads and parses a JWKS file.
    pub fn load_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether a key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// One JWK as a verification key, or why it cannot be one.
fn verify_key(raw: &serde_json::Value) -> Result<VerifyKey, String> {
    let obj = raw.as_object().ok_or("not a JSON object")?;
    if obj.contains_key("d") {
        return Err("it holds private key material (\"d\"); publish only public keys".into());
    }
    if let Some(u) = obj.get("use") {
        if u != "sig" {
            return Err(format!("its \"use\" is {u}, not \"sig\""));
        }
    }
    if let Some(ops) = obj.get("key_ops").and_then(|o| o.as_array()) {
        if !ops.iter().any(|o| o == "verify") {
            return Err("its \"key_ops\" does not include \"verify\"".into());
        }
    }
    let alg = match obj.get("alg") {
        None => None,
        Some(a) => Some(a.as_str().and_then(SigAlg::from_name).ok_or_else(|| {
            format!("its \"alg\" {a} is not ES256, ES384, RS256, RS384 or EdDSA")
        })?),
    };
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| format!("not a JWK: {e}"))?;
    let kind = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            ref c => return Err(format!("EC curve {c:?} is not supported")),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => KeyKind::Ed25519,
            ref c => return Err(format!("OKP curve {c:?} is not supported")),
        },
        AlgorithmParameters::RSA(p) => {
            let n = base64_len(&p.n);
            if n < MIN_RSA_MODULUS_BYTES {
                return Err(format!("RSA modulus of {} bits is below 2048", n * 8));
            }
            KeyKind::Rsa
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys are never accepted".into())
        }
    };
    if let Some(a) = alg {
        if !kind.fits(a) {
            return Err(format!(
                "its \"alg\" {} does not fit {}",
                a.name(),
                kind.describe()
            ));
        }
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(VerifyKey {
        kid: jwk.common.key_id.clone(),
        kind,
        alg,
        key,
    })
}

/// Decoded length of unpadded base64url text (leading zero bytes of a modulus included, which
/// makes this an upper bound good enough for a size floor).
fn base64_len(s: &str) -> usize {
    s.trim_end_matches('=').len() * 3 / 4
}

/// Where an issuer's keys come from.
#[derive(Debug)]
enum Source {
    File,
    Url { url: Url, client: reqwest::Client },
}

/// When the keys of a URL source were last fetched or tried.
#[derive(Debug, Default)]
struct Clock {
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
}

/// The keys of one issuer, shared by every request.
#[derive(Debug)]
pub struct IssuerKeys {
    source: Source,
    refresh: Duration,
    min_interval: Duration,
    current: RwLock<Arc<KeySet>>,
    clock: std::sync::Mutex<Clock>,
    // Serialises fetches, so a burst of requests with an unknown kid makes one fetch and then all see
    // its result.
    fetching: tokio::sync::Mutex<()>,
}

/// No key of the issuer is available (its JWKS URL has never answered usefully).
#[derive(Debug)]
pub struct KeysUnavailable;

impl IssuerKeys {
    /// Keys from a file already parsed.
    pub fn from_set(set: KeySet) -> Self {
        Self::new(Source::File, Duration::MAX, set)
    }

    /// Keys fetched from `url`, first at first use.
    pub fn from_url(url: Url, refresh: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the JWKS client: {e}"))?;
        Ok(Self::new(
            Source::Url { url, client },
            refresh,
            KeySet::default(),
        ))
    }

    fn new(source: Source, refresh: Duration, set: KeySet) -> Self {
        Self {
            source,
            refresh,
            min_interval: Duration::from_secs(super::config::MIN_REFRESH_SECS),
            current: RwLock::new(Arc::new(set)),
            clock: std::sync::Mutex::new(Clock::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Tests shorten the fetch rate limit.
    #[cfg(test)]
    pub fn with_min_interval(mut self, d: Duration) -> Self {
        self.min_interval = d;
        self
    }

    /// The current keys.
    pub fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The keys to verify a token naming `kid`: fetched first if there are none yet, re-fetched when
    /// `kid` is unknown, refreshed in the background when stale. Every fetch is rate-limited.
    pub async fn keys_for(
        self: &Arc<Self>,
        kid: Option<&str>,
    ) -> Result<Arc<KeySet>, KeysUnavailable> {
        if matches!(self.source, Source::File) {
            return Ok(self.current());
        }
        let mut keys = self.current();
        if keys.keys.is_empty() {
            self.fetch().await;
            keys = self.current();
            if keys.keys.is_empty() {
                return Err(KeysUnavailable);
            }
        } else if let Some(k) = kid.filter(|k| !keys.has_kid(k)) {
            tracing::info!(kid = %k, "unknown kid: refreshing the issuer's JWKS");
            self.fetch().await;
            keys = self.current();
        } else if self.stale() {
            let me = Arc::clone(self);
            tokio::spawn(async move { me.fetch().await });
        }
        Ok(keys)
    }

    /// Fetches the JWKS now unless a fetch was tried within the rate limit; a failure is logged and
    /// keeps the keys held.
    pub async fn fetch(&self) {
        let Source::Url { url, client } = &self.source else {
            return;
        };
        let _one = self.fetching.lock().await;
        if !self.may_fetch() {
            return;
        }
        match fetch_jwks(client, url).await {
            Ok(set) => {
                tracing::info!(url = %url, keys = set.keys.len(), "JWKS fetched");
                match self.current.write() {
                    Ok(mut g) => *g = Arc::new(set),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
                }
                self.with_clock(|c| c.last_success = Some(Instant::now()));
            }
            Err(e) => {
                tracing::warn!(url = %url, error = %e, "JWKS fetch failed; keeping the last good keys")
            }
        }
    }

    fn with_clock<T>(&self, f: impl FnOnce(&mut Clock) -> T) -> T {
        match self.clock.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Claims a fetch slot: false when one was tried less than `min_interval` ago.
    fn may_fetch(&self) -> bool {
        let now = Instant::now();
        let min = self.min_interval;
        self.with_clock(|c| {
            if c.last_attempt.is_some_and(|t| now.duration_since(t) < min) {
                return false;
            }
            c.last_attempt = Some(now);
            true
        })
    }

    fn stale(&self) -> bool {
        let refresh = self.refresh;
        self.with_clock(|c| {
            c.last_success
                .is_none_or(|t| Instant::now().duration_since(t) >= refresh)
        })
    }
}

async fn fetch_jwks(client: &reqwest::Client, url: &Url) -> Result<KeySet, String> {
    let mut resp = client
        .get(url.clone())
        .header(
            http::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("answered {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    let text = std::str::from_utf8(&body).map_err(|_| "the JWKS is not UTF-8".to_owned())?;
    KeySet::parse(text)
}
