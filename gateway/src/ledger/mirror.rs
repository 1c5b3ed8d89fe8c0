//! The static mirror: the c2sp tlog-tiles directory (`checkpoint`, `tile/...`) of the latest checkpoint,
//! written after each signing so that the log can be served, copied or verified as plain files.
//!
//! It is derived from the store and rewritten from it, so it is not fsynced; `anchorgate ledger verify
//! --dir` checks it like any other copy of the log.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::store::{Store, StoreError};
use super::tile::{hashes_at, TileId, MAX_LEVEL, WIDTH};

/// Why the mirror could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing a file failed.
    #[error("writing the ledger mirror: {0}")]
    Io(#[from] std::io::Error),
}

/// The tree size of the checkpoint the mirror in `root` holds (0 when it holds none), read from its
/// `checkpoint` file: where the next export must start, so a failed or skipped export leaves no gap.
pub fn exported_size(root: &Path) -> u64 {
    fs::read_to_string(root.join("checkpoint"))
        .ok()
        .and_then(|note| note.lines().nth(1).and_then(|l| l.parse().ok()))
        .unwrap_or(0)
}

/// Writes the tiles that changed between trees of `old` and `new` leaves, then the checkpoint note.
pub fn export(
    store: &Store,
    root: &Path,
    old: u64,
    new: u64,
    note: &str,
) -> Result<(), MirrorError> {
    for level in (0..=MAX_LEVEL).map(Some).chain([None]) {
        let l = level.unwrap_or(0);
        let (old_count, new_count) = (hashes_at(l, old), hashes_at(l, new));
        if new_count == 0 {
            continue;
        }
        let first = old_count / WIDTH;
        let last = (new_count - 1) / WIDTH;
        for index in first..=last {
            let width = (new_count - index * WIDTH).min(WIDTH) as u16;
            let id = TileId {
                level,
                index,
                width,
            };
            let data = store
                .tile_data(&id)?
                .ok_or_else(|| StoreError::Inconsistent(format!("{} is missing", id.path())))?;
            write_atomic(&root.join(id.path()), &data)?;
            // The partial this tile replaces (same tile, the old width) is no longer needed.
            let old_width = old_count.saturating_sub(index * WIDTH).min(WIDTH) as u16;
            if old_width > 0 && old_width < width && index == old_count / WIDTH {
                let stale = TileId {
                    level,
                    index,
                    width: old_width,
                };
                let _ = fs::remove_file(root.join(stale.path()));
            }
        }
    }
    write_atomic(&root.join("checkpoint"), note.as_bytes())?;
    Ok(())
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(data)?;
    drop(f);
    fs::rename(&tmp, path)
}
