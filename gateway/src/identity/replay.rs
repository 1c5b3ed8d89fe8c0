//! Replay detection for `jti`: a small store of the `jti`s seen per issuer until their token expires,
//! behind a trait so a shared store (Redis) can replace the in-memory one when several gateways run.
//!
//! The store only remembers; the [`super::config::ReplayMode`] decides what a repeat means. It keys
//! each `jti` with the SHA-256 of the whole token, so the default mode can tell "the same bearer token
//! again" (normal, RFC 6750) from "a different token re-using a `jti`" (a replay or a forgery attempt
//! on a leaked `jti`).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

/// SHA-256 of a token's compact serialisation.
pub type TokenDigest = [u8; 32];

/// A boxed future, so the trait stays object-safe for a network-backed store.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The store cannot take another entry: every slot holds a `jti` whose token has not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFull;

/// A store of seen `jti`s.
pub trait ReplayCache: Send + Sync + std::fmt::Debug {
    /// Records `(issuer, jti) → digest` until `expires_at` (unix seconds) unless an unexpired entry
    /// exists; returns that entry's digest when there is one (`None`: first sighting, now recorded).
    /// Must be atomic: two concurrent first sightings cannot both get `None`.
    fn check_and_record<'a>(
        &'a self,
        issuer: &'a str,
        jti: &'a str,
        digest: TokenDigest,
        expires_at: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<Option<TokenDigest>, CacheFull>>;
}

type Key = (String, String);

/// The in-memory store: bounded, each entry dropped once its token expires.
#[derive(Debug)]
pub struct MemoryReplayCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, (TokenDigest, u64)>,
    // Expiry order, so purging expired entries costs only what it removes.
    by_expiry: BTreeSet<(u64, Key)>,
}

impl MemoryReplayCache {
    /// A store holding at most `capacity` live entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Live entries held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn record(
        &self,
        key: Key,
        digest: TokenDigest,
        expires_at: u64,
        now: u64,
    ) -> Result<Option<TokenDigest>, CacheFull> {
        let mut inner = self.lock();
        inner.purge(now);
        if let Some((d, _)) = inner.entries.get(&key) {
            return Ok(Some(*d));
        }
        if inner.entries.len() >= self.capacity {
            return Err(CacheFull);
        }
        inner.by_expiry.insert((expires_at, key.clone()));
        inner.entries.insert(key, (digest, expires_at));
        Ok(None)
    }
}

impl Inner {
    /// Drops every entry whose token has expired at `now`.
    fn purge(&mut self, now: u64) {
        while let Some(first) = self.by_expiry.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, key)) = self.by_expiry.pop_first() {
                self.entries.remove(&key);
            }
        }
    }
}

impl ReplayCache for MemoryReplayCache {
    fn check_and_record<'a>(
        &'a self,
        issuer: &'a str,
        jti: &'a str,
        digest: TokenDigest,
        expires_at: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<Option<TokenDigest>, CacheFull>> {
        let out = self.record((issuer.to_owned(), jti.to_owned()), digest, expires_at, now);
        Box::pin(std::future::ready(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_expires_and_bounds() {
        let c = MemoryReplayCache::new(2);
        assert_eq!(
            c.check_and_record("i", "a", [1; 32], 100, 10).await,
            Ok(None)
        );
        assert_eq!(
            c.check_and_record("i", "a", [2; 32], 100, 11).await,
            Ok(Some([1; 32]))
        );
        // Another issuer's jti space is separate.
        assert_eq!(
            c.check_and_record("j", "a", [3; 32], 50, 11).await,
            Ok(None)
        );
        // Full of live entries: refused rather than forgetting one.
        assert_eq!(
            c.check_and_record("i", "b", [4; 32], 100, 12).await,
            Err(CacheFull)
        );
        // Once j/a has expired its slot is free, and i/a is still remembered.
        assert_eq!(
            c.check_and_record("i", "b", [4; 32], 100, 50).await,
            Ok(None)
        );
        assert_eq!(c.len(), 2);
        assert_eq!(
            c.check_and_record("i", "a", [9; 32], 200, 99).await,
            Ok(Some([1; 32]))
        );
        // After its token's expiry a jti is forgotten.
        assert_eq!(
            c.check_and_record("i", "a", [9; 32], 200, 100).await,
            Ok(None)
        );
    }
}
