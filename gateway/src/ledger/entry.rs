//! The ledger entry: a fixed 42-byte record holding no personal data, and the commitment rule.
//!
//! Layout (all integers big-endian), specified for third parties in `gateway/LEDGER.md`:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version, `1` |
//! | 1 | 1 | entry type ([`EntryType`]) |
//! | 2 | 32 | commitment |
//! | 34 | 8 | time, Unix seconds rounded down to the minute |
//!
//! commitment = SHA-256(domain ‖ salt ‖ payload), where the domain is the ASCII text
//! `anchorgate/v1/<entry type name>` followed by one zero byte, the salt is 32 random bytes kept only in
//! the gateway's store, and the payload depends on the type (for resource and consent versions, the
//! resource's canonical form, `gateway/CANONICAL.md`). Without the salt a commitment reveals nothing,
//! not even whether two entries commit to the same content; erasing the salt makes it unlinkable.

use sha2::{Digest, Sha256};

use super::hash::Hash;

/// The entry format version this gateway writes.
pub const VERSION: u8 = 1;
/// Bytes in an entry.
pub const LEN: usize = 42;
/// Entries carry time only to the minute: enough to order events for an auditor, coarse enough not to
/// pin a write to a clinical event.
pub const TIME_GRANULE_SECS: u64 = 60;

/// What an entry commits to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntryType {
    /// A resource version written through the gateway; payload: its canonical form.
    ResourceVersion = 1,
    /// A deletion (tombstone); payload: `Type/id`.
    ResourceDelete = 2,
    /// A Consent version; payload: its canonical form.
    ConsentVersion = 3,
    /// An access decision; payload: the decision record's canonical JSON.
    Decision = 4,
    /// A key or store event (start-up, key rotation, erasure); payload: the event's canonical JSON,
    /// which never holds a resource identifier.
    KeyEvent = 5,
}

impl EntryType {
    /// All types, in code order.
    pub const ALL: [EntryType; 5] = [
        EntryType::ResourceVersion,
        EntryType::ResourceDelete,
        EntryType::ConsentVersion,
        EntryType::Decision,
        EntryType::KeyEvent,
    ];

    /// The name used in the domain separator and in APIs.
    pub fn name(self) -> &'static str {
        match self {
            EntryType::ResourceVersion => "resource-version",
            EntryType::ResourceDelete => "resource-delete",
            EntryType::ConsentVersion => "consent-version",
            EntryType::Decision => "decision",
            EntryType::KeyEvent => "key-event",
        }
    }

    /// The type with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as u8 == code)
    }

    /// The domain separator: `anchorgate/v1/<name>` and a zero byte.
    pub fn domain(self) -> Vec<u8> {
        let mut d = format!("anchorgate/v{VERSION}/{}", self.name()).into_bytes();
        d.push(0);
        d
    }
}

/// A decoded entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// What it commits to.
    pub kind: EntryType,
    /// SHA-256(domain ‖ salt ‖ payload).
    pub commitment: Hash,
    /// Unix seconds, a multiple of [`TIME_GRANULE_SECS`].
    pub time: u64,
}

/// Why bytes are not an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not 42 bytes.
    #[error("an entry is {LEN} bytes, this one is {0}")]
    Length(usize),
    /// A format version this code does not know.
    #[error("unknown entry format version {0}")]
    Version(u8),
    /// An entry type this code does not know.
    #[error("unknown entry type {0}")]
    Type(u8),
    /// A time that is not on the minute.
    #[error("entry time {0} is not a multiple of {TIME_GRANULE_SECS} seconds")]
    Time(u64),
}

impl Entry {
    /// A new entry at `now` (Unix seconds), rounded down to the minute.
    pub fn new(kind: EntryType, commitment: Hash, now: u64) -> Self {
        Self {
            kind,
            commitment,
            time: now - now % TIME_GRANULE_SECS,
        }
    }

    /// The 42 bytes.
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0] = VERSION;
        out[1] = self.kind as u8;
        out[2..34].copy_from_slice(&self.commitment);
        out[34..].copy_from_slice(&self.time.to_be_bytes());
        out
    }

    /// Parses and checks the 42 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() != LEN {
            return Err(EntryError::Length(bytes.len()));
        }
        if bytes[0] != VERSION {
            return Err(EntryError::Version(bytes[0]));
        }
        let kind = EntryType::from_code(bytes[1]).ok_or(EntryError::Type(bytes[1]))?;
        let mut commitment = [0u8; 32];
        commitment.copy_from_slice(&bytes[2..34]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&bytes[34..]);
        let time = u64::from_be_bytes(t);
        if time % TIME_GRANULE_SECS != 0 {
            return Err(EntryError::Time(time));
        }
        Ok(Self {
            kind,
            commitment,
            time,
        })
    }
}

/// SHA-256(domain ‖ salt ‖ payload).
pub fn commitment(kind: EntryType, salt: &[u8; 32], payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(kind.domain());
    h.update(salt);
    h.update(payload);
    h.finalize().into()
}

/// The tombstone payload of a deletion: `Type/id`.
pub fn delete_payload(resource_type: &str, id: &str) -> Vec<u8> {
    format!("{resource_type}/{id}").into_bytes()
}

/// 32 random bytes from rand's thread-local CSPRNG (ChaCha12, seeded and reseeded from the operating
/// system): a salt per entry was a system call per request. It cannot fail once the OS generator
/// works; when that does not, rand panics: on a request the panic guard answers 500, and in the
/// decision recorder the thread stops, after which every record is refused and logged as not written.
pub fn fresh_salt() -> [u8; 32] {
    let mut salt = [0u8; 32];
    rand::fill(&mut salt[..]);
    salt
}

/// An entry bundle (c2sp tlog-tiles): each entry prefixed by its length as a big-endian u16.
pub fn bundle(entries: &[[u8; LEN]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * (LEN + 2));
    for e in entries {
        out.extend_from_slice(&(LEN as u16).to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// Splits an entry bundle into its entries; `None` if it is not a well-formed bundle.
pub fn split_bundle(mut data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 2 {
            return None;
        }
        let n = usize::from(u16::from_be_bytes([data[0], data[1]]));
        let rest = &data[2..];
        if rest.len() < n {
            return None;
        }
        out.push(&rest[..n]);
        data = &rest[n..];
    }
    Some(out)
}
