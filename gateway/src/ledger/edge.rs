//! The right edge of the tree: the partial tile at each level, which is all appending needs in memory.

use std::collections::BTreeMap;

use super::hash::{root_of_leaves, Hash};
use super::store::{Store, StoreError};
use super::tile::{hashes_at, MAX_LEVEL, WIDTH};

/// The partial (not yet full) hash tile of every level, and the tree size they describe.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    size: u64,
    partial: Vec<Vec<Hash>>,
}

impl Edge {
    /// Loads the edge of a store's tree of `size` leaves, checking each partial tile's width.
    pub fn load(store: &Store, size: u64) -> Result<Self, StoreError> {
        let mut partial = Vec::new();
        for level in 0..=MAX_LEVEL {
            let count = hashes_at(level, size);
            if count == 0 {
                break;
            }
            let width = (count % WIDTH) as usize;
            let mut hashes = Vec::with_capacity(width);
            if width > 0 {
                let index = count / WIDTH;
                let data = store
                    .hash_tile(level, index, width as u16)?
                    .ok_or_else(|| {
                        StoreError::Inconsistent(format!("hash tile {level}/{index} is missing"))
                    })?;
                if data.len() != width * 32 {
                    return Err(StoreError::Inconsistent(format!(
                        "hash tile {level}/{index} has {} bytes; a tree of {size} needs {}",
                        data.len(),
                        width * 32
                    )));
                }
                hashes.extend(data.chunks_exact(32).map(|c| {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(c);
                    h
                }));
            }
            partial.push(hashes);
        }
        Ok(Self { size, partial })
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; tiles it fills are recorded in `full` with their contents.
    pub fn push(&mut self, leaf: Hash, full: &mut BTreeMap<(u8, u64), Vec<u8>>) {
        self.size += 1;
        let mut hash = leaf;
        let mut level = 0usize;
        loop {
            if self.partial.len() <= level {
                self.partial.push(Vec::new());
            }
            let tiles = &mut self.partial[level];
            tiles.push(hash);
            if tiles.len() as u64 == WIDTH {
                // A full tile: its root is the next level's newest hash.
                let index = hashes_at(level as u8, self.size) / WIDTH - 1;
                full.insert((level as u8, index), tiles.concat());
                hash = root_of_leaves(tiles);
                tiles.clear();
                level += 1;
                continue;
            }
            break;
        }
    }

    /// The partial tiles of levels above 0 as (level, index, bytes). They change only when a tile
    /// below fills, so a batch stores them only then; level 0's is derived from the entries
    /// ([`Store::hash_tile`]).
    pub fn partial_tiles(&self) -> impl Iterator<Item = (u8, u64, Vec<u8>)> + '_ {
        self.partial
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, t)| !t.is_empty())
            .map(|(level, t)| {
                let level = level as u8;
                (level, hashes_at(level, self.size) / WIDTH, t.concat())
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ledger::hash::{leaf_hash, HashSource, MemoryTree};

    #[test]
    fn dirty_tiles_hold_what_a_memory_tree_computes() {
        let mut edge = Edge::default();
        let mut tiles = BTreeMap::new();
        let mut mem = MemoryTree::default();
        for i in 0u32..70_000 {
            let l = leaf_hash(&i.to_be_bytes());
            mem.leaves.push(l);
            edge.push(l, &mut tiles);
        }
        tiles.extend(edge.partial_tiles().map(|(l, i, d)| ((l, i), d)));
        // Level 0's partial tile is not among them: it is derived from the entries.
        assert!(!tiles.contains_key(&(0, 273)));
        // Level-1 tile 0 holds the roots of level-0 tiles 0..256.
        let t = &tiles[&(1, 0)];
        assert_eq!(t.len(), 256 * 32);
        assert_eq!(&t[32 * 5..32 * 6], &mem.node(8, 5).unwrap()[..]);
        // Level 2 holds one hash: the root of the first 65,536 leaves.
        assert_eq!(&tiles[&(2, 0)][..], &mem.node(16, 0).unwrap()[..]);
    }
}
