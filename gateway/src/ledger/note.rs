//! c2sp.org/signed-note with Ed25519 keys, and c2sp.org/tlog-checkpoint bodies.
//!
//! Keys use the encodings Go's `golang.org/x/mod/sumdb/note` reads, so existing tooling verifies our
//! checkpoints: verifier `name+keyid+base64(0x01 ‖ public key)`, signer
//! `PRIVATE+KEY+name+keyid+base64(0x01 ‖ seed)`, key id = SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[:4].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::hash::Hash;

/// The signature algorithm byte for Ed25519 in signed-note keys.
const ALG_ED25519: u8 = 0x01;
/// The signature line prefix: an em dash and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a key, note or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key string that is not in signed-note form.
    #[error("malformed key: {0}")]
    Key(&'static str),
    /// A note that is not in signed-note form.
    #[error("malformed note: {0}")]
    Note(&'static str),
    /// No signature by the expected key verifies.
    #[error("no valid signature by {0}")]
    Signature(String),
    /// A checkpoint body that is not in tlog-checkpoint form.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
}

/// A key name: non-empty, no whitespace, no `+` (signed-note §Keys).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// `name+keyid+base64(0x01 ‖ 32 bytes)` → (name, key id as written, the 32 bytes). The base64 part may
/// itself contain `+`; the name and the id cannot.
fn split_key(text: &str) -> Result<(&str, &str, [u8; 32]), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::Key("expected name+keyid+key"));
    };
    if !valid_name(name) {
        return Err(NoteError::Key("bad key name"));
    }
    let raw = B64
        .decode(b64)
        .map_err(|_| NoteError::Key("the key is not base64"))?;
    if raw.len() != 33 || raw[0] != ALG_ED25519 {
        return Err(NoteError::Key("not an Ed25519 key"));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&raw[1..]);
    Ok((name, id_hex, key))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An Ed25519 note signer.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    id: [u8; 4],
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A fresh key from the operating system's randomness.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| NoteError::Key("no randomness available"))?;
        Self::from_seed(name, seed)
    }

    fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key(
                "the name must be non-empty, without spaces or '+'",
            ));
        }
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// Parses `PRIVATE+KEY+name+keyid+base64(0x01 ‖ seed)`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::Key("a signer key starts with PRIVATE+KEY+"))?;
        let (name, id_hex, seed) = split_key(rest)?;
        let signer = Self::from_seed(name, seed)?;
        if hex(&signer.id) != id_hex {
            return Err(NoteError::Key("the key id does not match the key"));
        }
        Ok(signer)
    }

    /// `PRIVATE+KEY+name+keyid+base64(0x01 ‖ seed)`: secret.
    pub fn encode(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex(&self.id),
            B64.encode(raw)
        )
    }

    /// The verifier key in signed-note form.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            id: self.id,
        }
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Signs `text` (which must end in a newline) and returns the whole note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

/// An Ed25519 note verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
    id: [u8; 4],
}

impl NoteVerifier {
    /// Parses `name+keyid+base64(0x01 ‖ public key)`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id_hex, public) = split_key(text.trim())?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::Key("not an Ed25519 point"))?;
        let id = key_id(name, &public);
        if hex(&id) != id_hex {
            return Err(NoteError::Key("the key id does not match the key"));
        }
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// `name+keyid+base64(0x01 ‖ public key)`.
    pub fn encode(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex(&self.id), B64.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies `note` and returns its text when a signature line by this key verifies. Signatures by
    /// other keys are ignored, as signed-note requires.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let split = note
            .find("\n\n")
            .ok_or(NoteError::Note("no blank line before the signatures"))?;
        let text = &note[..split + 1];
        check_text(text)?;
        let sigs = &note[split + 2..];
        if !sigs.ends_with('\n') {
            return Err(NoteError::Note("the signatures do not end in a newline"));
        }
        for line in sigs.lines() {
            let body = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Note(
                "a signature line must start with an em dash",
            ))?;
            let (name, b64) = body
                .split_once(' ')
                .ok_or(NoteError::Note("a signature line is name and signature"))?;
            let Ok(blob) = B64.decode(b64) else {
                return Err(NoteError::Note("a signature is not base64"));
            };
            if name != self.name || blob.len() != 68 || blob[..4] != self.id {
                continue;
            }
            let Ok(sig) = ed25519_dalek::Signature::from_slice(&blob[4..]) else {
                continue;
            };
            if self.key.verify_strict(text.as_bytes(), &sig).is_ok() {
                return Ok(text);
            }
        }
        Err(NoteError::Signature(self.name.clone()))
    }
}

/// Note text: non-empty UTF-8 lines ending in newlines, no other control characters.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::Note("the text must end in a newline"));
    }
    if text.contains("\n\n") || text.starts_with('\n') {
        return Err(NoteError::Note("the text has an empty line"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Note("the text has control characters"));
    }
    Ok(())
}

/// A checkpoint body (c2sp.org/tlog-checkpoint): origin, tree size, root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses note text (extension lines after the root are allowed and ignored).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = text.lines();
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::Checkpoint("no origin line"))?;
        let size_line = lines.next().ok_or(NoteError::Checkpoint("no size line"))?;
        if size_line.is_empty()
            || !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(NoteError::Checkpoint(
                "the size is not a decimal without leading zeros",
            ));
        }
        let size = size_line
            .parse()
            .map_err(|_| NoteError::Checkpoint("the size does not fit 64 bits"))?;
        let root_line = lines.next().ok_or(NoteError::Checkpoint("no root line"))?;
        let raw = B64
            .decode(root_line)
            .map_err(|_| NoteError::Checkpoint("the root is not base64"))?;
        let root: Hash = raw
            .try_into()
            .map_err(|_| NoteError::Checkpoint("the root is not 32 bytes"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // The example key pair and signed note from Go's golang.org/x/mod/sumdb/note documentation
    // (also used by c2sp.org/signed-note tooling).
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn reads_go_note_keys_and_verifies_its_example() {
        let signer = NoteSigner::parse(GO_SKEY).unwrap();
        assert_eq!(signer.verifier().encode(), GO_VKEY);
        let v = NoteVerifier::parse(GO_VKEY).unwrap();
        let text = v.open(GO_NOTE).unwrap();
        assert!(text.starts_with("If you think"));
        // Ed25519 is deterministic: our signature is byte-identical to Go's.
        assert_eq!(signer.sign(text).unwrap(), GO_NOTE);
    }

    #[test]
    fn tampering_is_detected() {
        let v = NoteVerifier::parse(GO_VKEY).unwrap();
        let bad = GO_NOTE.replace("answer", "Answer");
        assert!(matches!(v.open(&bad), Err(NoteError::Signature(_))));
        let other = NoteSigner::generate("PeterNeumann").unwrap();
        let forged = other.sign("hello\n").unwrap();
        assert!(v.open(&forged).is_err());
    }

    #[test]
    fn checkpoints_round_trip() {
        let s = NoteSigner::generate("example.com/log").unwrap();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 12,
            root: [7u8; 32],
        };
        let note = s.sign(&cp.text()).unwrap();
        let text = s.verifier().open(&note).unwrap();
        assert_eq!(Checkpoint::parse(text).unwrap(), cp);
        assert!(Checkpoint::parse("o\n012\nAAAA\n").is_err());
        assert!(Checkpoint::parse("o\n12\nAAAA\n").is_err());
    }
}
