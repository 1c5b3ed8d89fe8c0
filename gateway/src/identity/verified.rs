//! Tokens already verified, by the SHA-256 of the whole token, until they expire: a bearer token is
//! presented on every request, and its signature check would otherwise be paid each time (criterion,
//! `benches/identity.rs`: a whole `authenticate` takes 83 µs with ES256, 1.1 ms with ES384, 38 µs with
//! RS256, 78 µs with EdDSA, and 1.2 µs from this cache).
//!
//! Only the static part of a verification is kept (signature, issuer, audience, claim types, the
//! partner registry's answer); the time window, the purpose header and `jti` replay are checked on
//! every request. A token whose key is later removed from its issuer's JWKS stays accepted until it
//! expires, as it would at any resource server that validated it once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::claims::Window;
use super::principal::Principal;
use super::replay::TokenDigest;

/// What a verified token established.
#[derive(Debug)]
pub struct Verified {
    /// The principal, with the registry-allowed purposes and no effective purpose yet.
    pub principal: Principal,
    /// The token's purposes before the registry's filter (for precise refusals).
    pub token_purposes: Vec<String>,
    /// The token's time window.
    pub window: Window,
}

/// A bounded map of verified tokens.
#[derive(Debug)]
pub struct VerifiedCache {
    capacity: usize,
    // (verified, last second it may be accepted)
    map: RwLock<HashMap<TokenDigest, (Arc<Verified>, u64)>>,
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens; 0 disables it.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The verified token with this digest.
    pub fn get(&self, digest: &TokenDigest) -> Option<Arc<Verified>> {
        if self.capacity == 0 {
            return None;
        }
        let map = match self.map.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.get(digest).map(|(v, _)| Arc::clone(v))
    }

    /// Remembers a verified token until `until` (its `exp` plus leeway). When full, expired tokens are
    /// dropped, and if every one is still live the cache starts over: re-verifying costs a signature
    /// check, never a wrong answer, and this keeps each insert cheap whatever the load.
    pub fn insert(&self, digest: TokenDigest, verified: Arc<Verified>, until: u64, now: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut map = match self.map.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() >= self.capacity {
            map.retain(|_, (_, u)| *u > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(digest, (verified, until));
    }

    /// Tokens held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        match self.map.read() {
            Ok(g) => g.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }
}
