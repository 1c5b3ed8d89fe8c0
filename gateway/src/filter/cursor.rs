//! Paging cursors bound to a principal: the upstream's next-page links, sealed so only the principal they were issued to can follow them.
//!
//! A filtered search page must not hand out the upstream's own paging URL: anyone holding it could
//! read the next page through the gateway under another identity, or straight from the upstream.
//! Instead the link becomes `[base]?_cursor=<c>`, where `c` carries the upstream-relative link and an
//! HMAC-SHA-256 over (principal, expiry, link) under a key only this gateway process holds. The
//! cursor is stateless (nothing to store or expire), and tampering or replay by another principal
//! fails verification in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The search parameter carrying a cursor.
pub const PARAM: &str = "_cursor";

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor this gateway made.
    #[error("the paging cursor is malformed")]
    Malformed,
    /// Made for someone else, or altered.
    #[error("the paging cursor was not issued to this principal (or was altered)")]
    WrongPrincipal,
    /// Too old.
    #[error("the paging cursor has expired; repeat the search")]
    Expired,
}

/// Seals and opens cursors with one process-wide key.
#[derive(Clone)]
pub struct Cursors {
    key: [u8; 32],
    lifetime_secs: u64,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursors")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl Cursors {
    /// Cursors under `key`, valid for `lifetime_secs`.
    pub fn new(key: [u8; 32], lifetime_secs: u64) -> Self {
        Self { key, lifetime_secs }
    }

    /// A fresh random key: cursors do not survive a restart, which only costs a client a new search.
    pub fn random(lifetime_secs: u64) -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self::new(key, lifetime_secs))
    }

    fn mac(&self, principal: &str, expires: u64, link: &str) -> HmacSha256 {
        // `new_from_slice` accepts any key length for HMAC; a 32-byte key cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in [
            principal.as_bytes(),
            &expires.to_be_bytes(),
            link.as_bytes(),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// Seals `link` (upstream-relative path and query) for `principal` at time `now`.
    pub fn seal(&self, principal: &str, link: &str, now: u64) -> String {
        let expires = now + self.lifetime_secs;
        let tag = self.mac(principal, expires, link).finalize().into_bytes();
        let mut raw = Vec::with_capacity(8 + tag.len() + link.len());
        raw.extend_from_slice(&expires.to_be_bytes());
        raw.extend_from_slice(&tag);
        raw.extend_from_slice(link.as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The link sealed in `cursor`, if it was sealed for `principal` and has not expired.
    pub fn open(&self, principal: &str, cursor: &str, now: u64) -> Result<String, CursorError> {
        let raw = URL_SAFE_NO_PAD
            .decode(cursor.as_bytes())
            .map_err(|_| CursorError::Malformed)?;
        if raw.len() < 8 + 32 {
            return Err(CursorError::Malformed);
        }
        let (exp, rest) = raw.split_at(8);
        let (tag, link) = rest.split_at(32);
        let expires = u64::from_be_bytes(exp.try_into().map_err(|_| CursorError::Malformed)?);
        let link = std::str::from_utf8(link).map_err(|_| CursorError::Malformed)?;
        // Constant-time comparison (hmac's verify).
        self.mac(principal, expires, link)
            .verify_slice(tag)
            .map_err(|_| CursorError::WrongPrincipal)?;
        if now > expires {
            return Err(CursorError::Expired);
        }
        Ok(link.to_owned())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let c = Cursors::new([7; 32], 600);
        let s = c.seal(
            "iss|alice",
            "Observation?_getpages=x&_getpagesoffset=20",
            1000,
        );
        assert_eq!(
            c.open("iss|alice", &s, 1001).unwrap(),
            "Observation?_getpages=x&_getpagesoffset=20"
        );
        assert_eq!(
            c.open("iss|bob", &s, 1001),
            Err(CursorError::WrongPrincipal)
        );
        assert_eq!(c.open("iss|alice", &s, 1601), Err(CursorError::Expired));
        let mut raw = URL_SAFE_NO_PAD.decode(&s).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(
            c.open("iss|alice", &URL_SAFE_NO_PAD.encode(raw), 1001),
            Err(CursorError::WrongPrincipal)
        );
        assert_eq!(c.open("iss|alice", "!!", 1001), Err(CursorError::Malformed));
        assert_eq!(
            c.open("iss|alice", "AAAA", 1001),
            Err(CursorError::Malformed)
        );
        let other = Cursors::new([8; 32], 600);
        assert_eq!(
            other.open("iss|alice", &s, 1001),
            Err(CursorError::WrongPrincipal)
        );
    }
}
