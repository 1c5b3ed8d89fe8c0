//! RFC 9162 inclusion and consistency proofs: generation over any [`HashSource`], and verification.

use super::hash::{node_hash, range_hash, split_point, Hash, HashSource};

/// Why a proof cannot be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The indices or sizes asked for are outside the tree.
    #[error("{0}")]
    OutOfRange(String),
    /// The proof does not lead to the root it should.
    #[error("the proof does not verify: {0}")]
    Mismatch(&'static str),
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1), leaf sibling first.
pub fn inclusion<S: HashSource>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Result<Vec<Hash>, ProofError>, S::Error> {
    if index >= size {
        return Ok(Err(ProofError::OutOfRange(format!(
            "index {index} is not below tree size {size}"
        ))));
    }
    let mut path = Vec::new();
    path_into(src, index, 0, size, &mut path)?;
    Ok(Ok(path))
}

/// PATH(m, D[lo:hi]) with `m` relative to `lo`; hashes are pushed deepest first.
fn path_into<S: HashSource>(
    src: &S,
    m: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path_into(src, m, lo, lo + k, out)?;
        out.push(range_hash(src, lo + k, hi)?);
    } else {
        path_into(src, m - k, lo + k, hi, out)?;
        out.push(range_hash(src, lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of `old` and `new` leaves (RFC 9162 §2.1.4.1).
pub fn consistency<S: HashSource>(
    src: &S,
    old: u64,
    new: u64,
) -> Result<Result<Vec<Hash>, ProofError>, S::Error> {
    if old > new {
        return Ok(Err(ProofError::OutOfRange(format!(
            "old size {old} is larger than new size {new}"
        ))));
    }
    let mut out = Vec::new();
    if old == 0 || old == new {
        return Ok(Ok(out));
    }
    subproof_into(src, old, 0, new, true, &mut out)?;
    Ok(Ok(out))
}

/// SUBPROOF(m, D[lo:hi], b).
fn subproof_into<S: HashSource>(
    src: &S,
    m: u64,
    lo: u64,
    hi: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push(range_hash(src, lo, hi)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof_into(src, m, lo, lo + k, complete, out)?;
        out.push(range_hash(src, lo + k, hi)?);
    } else {
        subproof_into(src, m - k, lo + k, hi, false, out)?;
        out.push(range_hash(src, lo, lo + k)?);
    }
    Ok(())
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    path: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange(format!(
            "index {index} is not below tree size {size}"
        )));
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return Err(ProofError::Mismatch("the inclusion proof is too long"));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::Mismatch("the inclusion proof is too short"));
    }
    if r != *root {
        return Err(ProofError::Mismatch(
            "the inclusion proof leads to another root",
        ));
    }
    Ok(())
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::OutOfRange(format!(
            "old size {old} is larger than new size {new}"
        )));
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch(
                "equal sizes need an empty proof and equal roots",
            ))
        };
    }
    if old == 0 {
        // Every tree extends the empty tree; RFC 9162 defines no proof for it.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::Mismatch("a proof from the empty tree is empty"))
        };
    }
    if proof.is_empty() {
        return Err(ProofError::Mismatch("the consistency proof is empty"));
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return Err(ProofError::Mismatch("the consistency proof is too long"));
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::Mismatch("the consistency proof is too short"));
    }
    if fr != *old_root {
        return Err(ProofError::Mismatch(
            "the consistency proof does not lead to the old root",
        ));
    }
    if sr != *new_root {
        return Err(ProofError::Mismatch(
            "the consistency proof does not lead to the new root",
        ));
    }
    Ok(())
}
