//! Offline verification of a whole log (`anchorgate ledger verify`): from a URL or a mirror directory,
//! check the checkpoint's signature, that every entry is well-formed, that every tile and entry
//! recomputes to the checkpoint's root, and that the log still extends the checkpoint remembered from
//! the last run (otherwise it forked or was rolled back).

use std::path::{Path, PathBuf};

use super::entry::{split_bundle, Entry};
use super::hash::{leaf_hash, root_of_leaves, Hash};
use super::note::{Checkpoint, NoteVerifier};
use super::tile::{hashes_at, levels, tiles_for, TileId, WIDTH};
use crate::progress::Progress;

/// Where the log is read from.
pub trait LogSource {
    /// The bytes at `path` (relative to the log prefix), `None` if absent.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, String>;
}

/// A log served over HTTP(S) at `base` (e.g. `https://gw.example/ledger`).
#[derive(Debug)]
pub struct HttpSource {
    base: String,
    client: reqwest::blocking::Client,
}

impl HttpSource {
    /// A source reading below `base`.
    pub fn new(base: &str) -> Result<Self, String> {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
        })
    }
}

impl LogSource for HttpSource {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let url = format!("{}/{path}", self.base);
        let resp = self
            .client
            .get(&url)
            .send()
            .map_err(|e| format!("{url}: {e}"))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(format!("{url}: {}", resp.status()));
        }
        resp.bytes()
            .map(|b| Some(b.to_vec()))
            .map_err(|e| format!("{url}: {e}"))
    }
}

/// A log mirrored as files in `root`.
#[derive(Debug)]
pub struct DirSource {
    /// The mirror's root (holding `checkpoint` and `tile/`).
    pub root: PathBuf,
}

impl LogSource for DirSource {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        match std::fs::read(self.root.join(path)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.root.join(path).display())),
        }
    }
}

/// What a successful verification found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The origin line.
    pub origin: String,
    /// Entries verified.
    pub size: u64,
    /// The root hash, base64.
    pub root: String,
    /// Tiles and bundles read.
    pub tiles: u64,
    /// The size of the checkpoint remembered from the last run, if any.
    pub previous_size: Option<u64>,
}

/// Verifies the log at `src` with `key`; with `state`, also against (and then updating) the checkpoint
/// remembered there. `progress` hears of the entries as their bundles are checked.
pub fn verify(
    src: &dyn LogSource,
    key: &NoteVerifier,
    state: Option<&Path>,
    progress: &dyn Progress,
) -> Result<Report, String> {
    use base64::Engine as _;
    let note = src.get("checkpoint")?.ok_or("no checkpoint")?;
    let note = String::from_utf8(note).map_err(|_| "the checkpoint is not UTF-8")?;
    let text = key.open(&note).map_err(|e| format!("checkpoint: {e}"))?;
    let cp = Checkpoint::parse(text).map_err(|e| e.to_string())?;
    if cp.origin != key.name() {
        return Err(format!(
            "the checkpoint's origin {:?} is not the key's name {:?}",
            cp.origin,
            key.name()
        ));
    }
    let mut tiles_read = 0u64;
    progress.total(cp.size);
    // Entries: every bundle must be there, well-formed, with exactly its width of valid entries.
    let mut leaves: Vec<Hash> = Vec::with_capacity(cp.size as usize);
    for id in tiles_for(None, cp.size) {
        let data = fetch(src, &id)?;
        tiles_read += 1;
        let entries = split_bundle(&data)
            .ok_or_else(|| format!("{} is not a well-formed entry bundle", id.path()))?;
        if entries.len() != usize::from(id.width) {
            return Err(format!(
                "{} holds {} entries, not {}",
                id.path(),
                entries.len(),
                id.width
            ));
        }
        for (i, e) in entries.iter().enumerate() {
            Entry::decode(e).map_err(|err| {
                format!("entry {} is malformed: {err}", id.index * WIDTH + i as u64)
            })?;
            leaves.push(leaf_hash(e));
        }
        progress.advance(u64::from(id.width));
    }
    // Hash tiles: level 0 must be the leaf hashes, level L+1 the roots of the full level-L tiles.
    let mut level_hashes = leaves.clone();
    for level in levels(cp.size) {
        let count = hashes_at(level, cp.size) as usize;
        if level_hashes.len() != count {
            return Err(format!(
                "level {level}: {} hashes computed, {count} expected",
                level_hashes.len()
            ));
        }
        for id in tiles_for(Some(level), cp.size) {
            let data = fetch(src, &id)?;
            tiles_read += 1;
            let start = (id.index * WIDTH) as usize;
            let want: Vec<u8> = level_hashes[start..start + usize::from(id.width)].concat();
            if data != want {
                return Err(format!("{} does not match the entries", id.path()));
            }
        }
        level_hashes = level_hashes
            .chunks_exact(WIDTH as usize)
            .map(root_of_leaves)
            .collect();
    }
    let root = root_of_leaves(&leaves);
    if root != cp.root {
        return Err("the entries do not recompute to the checkpoint's root".into());
    }
    // Consistency with the last run: the old tree must be a prefix of this one.
    let mut previous_size = None;
    if let Some(path) = state {
        if let Ok(old_note) = std::fs::read_to_string(path) {
            let old_text = key
                .open(&old_note)
                .map_err(|e| format!("state {}: {e}", path.display()))?;
            let old = Checkpoint::parse(old_text).map_err(|e| e.to_string())?;
            if old.size > cp.size {
                return Err(format!(
                    "FORK or rollback: the log has {} entries but checkpoint {} was seen before",
                    cp.size, old.size
                ));
            }
            if root_of_leaves(&leaves[..old.size as usize]) != old.root {
                return Err(format!(
                    "FORK: the first {} entries no longer hash to the remembered checkpoint's root",
                    old.size
                ));
            }
            previous_size = Some(old.size);
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &note)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("state {}: {e}", path.display()))?;
    }
    Ok(Report {
        origin: cp.origin,
        size: cp.size,
        root: base64::engine::general_purpose::STANDARD.encode(root),
        tiles: tiles_read,
        previous_size,
    })
}

fn fetch(src: &dyn LogSource, id: &TileId) -> Result<Vec<u8>, String> {
    src.get(&id.path())?
        .ok_or_else(|| format!("{} is missing", id.path()))
}
