//! RFC 6962 / RFC 9162 Merkle hashing: leaf and interior node hashes, and the root of any range.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: leaf, node, root or commitment.
pub type Hash = [u8; 32];

/// The hash of an entry as a leaf: SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// The hash of an interior node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (`n` ≥ 2): where RFC 6962 splits a range.
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Where complete, aligned subtree hashes come from: node `index` at `level` covers leaves
/// `[index·2^level, (index+1)·2^level)`.
pub trait HashSource {
    /// The error reading the source can give.
    type Error;
    /// The hash of a complete, aligned subtree.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// MTH(D[lo:hi]) for a range starting at a multiple of a power of two at least as large as the range,
/// which is every range RFC 6962's recursion visits.
pub fn range_hash<S: HashSource>(src: &S, lo: u64, hi: u64) -> Result<Hash, S::Error> {
    debug_assert!(hi > lo);
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return src.node(n.trailing_zeros() as u8, lo >> n.trailing_zeros());
    }
    let k = split_point(n);
    let left = range_hash(src, lo, lo + k)?;
    let right = range_hash(src, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// The root of a tree of `size` leaves.
pub fn root<S: HashSource>(src: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(src, 0, size)
}

/// MTH over leaf hashes held in memory (tests, tile roots, the offline verifier).
pub fn root_of_leaves(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of_leaves(&leaves[..k]), &root_of_leaves(&leaves[k..]))
        }
    }
}

/// A [`HashSource`] over all leaf hashes in memory; the reference the tile-backed source is tested
/// against.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// Leaf hashes in order.
    pub leaves: Vec<Hash>,
}

impl HashSource for MemoryTree {
    type Error = std::convert::Infallible;
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        let width = 1usize << level;
        let start = index as usize * width;
        Ok(root_of_leaves(&self.leaves[start..start + width]))
    }
}
