//! Subtree hashes read from the stored hash tiles: what proofs and roots are computed from.

use std::cell::RefCell;
use std::collections::HashMap;

use super::hash::{root_of_leaves, Hash, HashSource};
use super::store::{Store, StoreError};
use super::tile::{HEIGHT, WIDTH};

/// A [`HashSource`] over a store's tiles, caching the tiles one computation reads.
#[derive(Debug)]
pub struct StoreTiles<'a> {
    store: &'a Store,
    cache: RefCell<HashMap<(u8, u64), Vec<u8>>>,
}

impl<'a> StoreTiles<'a> {
    /// Reads tiles from `store`.
    pub fn new(store: &'a Store) -> Self {
        Self {
            store,
            cache: RefCell::new(HashMap::new()),
        }
    }
}

impl HashSource for StoreTiles<'_> {
    type Error = StoreError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        let tile_level = (u32::from(level) / HEIGHT) as u8;
        let sub = u32::from(level) % HEIGHT;
        // The node covers 2^sub consecutive hashes of tree level 8·tile_level, all in one tile.
        let first = index << sub;
        let count = 1usize << sub;
        let tile = first / WIDTH;
        let offset = (first % WIDTH) as usize;
        let needed = (offset + count) * 32;
        let mut cache = self.cache.borrow_mut();
        let data = match cache.get(&(tile_level, tile)).filter(|d| d.len() >= needed) {
            Some(d) => d,
            None => {
                let d = self
                    .store
                    .hash_tile(tile_level, tile, (offset + count) as u16)?
                    .ok_or_else(|| {
                        StoreError::Inconsistent(format!(
                            "hash tile {tile_level}/{tile} is missing"
                        ))
                    })?;
                cache.insert((tile_level, tile), d);
                &cache[&(tile_level, tile)]
            }
        };
        if data.len() < needed || data.len() % 32 != 0 {
            return Err(StoreError::Inconsistent(format!(
                "hash tile {tile_level}/{tile} has {} bytes, {needed} needed",
                data.len()
            )));
        }
        let hashes: Vec<Hash> = data[offset * 32..needed]
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        Ok(root_of_leaves(&hashes))
    }
}
