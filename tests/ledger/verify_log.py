#!/usr/bin/env python3
"""Independent verifier for the Anchorgate ledger.

Written from gateway/LEDGER.md and gateway/CANONICAL.md and the public specs they cite
(RFC 6962 / RFC 9162 Merkle trees and proofs, c2sp.org/tlog-tiles, tlog-checkpoint, signed-note,
tlog-proof, RFC 8785 JCS), without reading the gateway's Rust ledger or canonicalisation code.

Subcommands (each prints one JSON line; exit 0 = verified, 1 = verification failure, 2 = usage error):

  log      (--url BASE | --dir DIR) --key VKEY   whole log: checkpoint, entries, hash tiles, root
  proofs   --url BASE --key VKEY                 the gateway's inclusion/consistency proof endpoints
  receipt  --receipt FILE --resource FILE --key VKEY   an offline $receipt against a resource version
  decision --response FILE --key VKEY             a decision record (/audit/decisions/{id}) against the log
  selftest                                       RFC 6962 vectors, Go signed-note example, JCS cases

Python 3.11, standard library plus `cryptography` (Ed25519).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class VerifyError(Exception):
    """A verification failure (exit 1)."""


class UsageError(Exception):
    """Bad invocation or unreadable input that is not the log's fault (exit 2)."""


# --------------------------------------------------------------------------------------------
# Encodings
# --------------------------------------------------------------------------------------------


def b64d(s: str, what: str, length: int | None = None) -> bytes:
    """Strict standard base64 (RFC 4648 §4, padded)."""
    if not isinstance(s, str):
        raise VerifyError(f"{what}: expected a base64 string, got {type(s).__name__}")
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise VerifyError(f"{what}: invalid base64 {s!r}: {e}") from None
    if base64.b64encode(raw).decode() != s:
        raise VerifyError(f"{what}: non-canonical base64 {s!r}")
    if length is not None and len(raw) != length:
        raise VerifyError(f"{what}: expected {length} bytes, got {len(raw)}")
    return raw


def b64e(b: bytes) -> str:
    return base64.b64encode(b).decode()


def parse_decimal(s: str, what: str) -> int:
    """ASCII decimal, no sign, no leading zeros (unless "0")."""
    if not s or not s.isascii() or not s.isdigit() or (len(s) > 1 and s[0] == "0"):
        raise VerifyError(f"{what}: not a canonical decimal: {s!r}")
    return int(s)


# --------------------------------------------------------------------------------------------
# RFC 6962 §2.1 tree hashing
# --------------------------------------------------------------------------------------------


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


EMPTY_ROOT = sha256(b"")


def leaf_hash(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def split_point(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Tree:
    """Leaf hashes of a log, with MTH over any range (perfect aligned subtrees memoised)."""

    def __init__(self, leaf_hashes: list[bytes]):
        self.leaves = leaf_hashes
        self._perfect: dict[tuple[int, int], bytes] = {}

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) per RFC 6962 §2.1."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n == 1:
            return self.leaves[lo]
        perfect = n & (n - 1) == 0
        if perfect:
            got = self._perfect.get((lo, n))
            if got is not None:
                return got
        k = split_point(n)
        h = node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))
        if perfect:
            self._perfect[(lo, n)] = h
        return h

    def root(self, size: int) -> bytes:
        if size > len(self.leaves):
            raise ValueError("size beyond the tree")
        return self.mth(0, size)

    # RFC 9162 §2.1.3.1 PATH(m, D[n]); used for the self-test and tamper checks only.
    def inclusion_proof(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n <= 1:
            return []
        k = split_point(n)
        if m < k:
            return self.inclusion_proof(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self.inclusion_proof(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    # RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true)
    def consistency_proof(self, m: int, n: int) -> list[bytes]:
        if m == n:
            return []
        return self._subproof(m, 0, n, True)

    def _subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = split_point(n)
        if m <= k:
            return self._subproof(m, lo, lo + k, b) + [self.mth(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]


def mth_list(hashes: list[bytes]) -> bytes:
    return Tree(hashes).root(len(hashes))


# --------------------------------------------------------------------------------------------
# RFC 9162 proof verification (§2.1.3.2 inclusion, §2.1.4.2 consistency)
# --------------------------------------------------------------------------------------------


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    if index < 0 or index >= size:
        raise VerifyError(f"inclusion: index {index} not below tree size {size}")
    if any(len(p) != 32 for p in proof):
        raise VerifyError("inclusion: proof element is not 32 bytes")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise VerifyError(f"inclusion({index},{size}): proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerifyError(f"inclusion({index},{size}): proof too short")
    if r != root:
        raise VerifyError(f"inclusion({index},{size}): computed root {b64e(r)} != expected {b64e(root)}")


def verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> None:
    if m < 1 or m > n:
        # Consistency from the empty tree is trivial and not a proof; RFC 9162 requires 0 < m <= n.
        raise VerifyError(f"consistency: sizes {m} -> {n} out of range")
    if any(len(p) != 32 for p in proof):
        raise VerifyError("consistency: proof element is not 32 bytes")
    if m == n:
        # RFC 9162 §2.1.4.1: the proof for m == n is empty; the roots must be equal.
        if proof:
            raise VerifyError(f"consistency({m},{n}): expected an empty proof for equal sizes")
        if old_root != new_root:
            raise VerifyError(f"consistency({m},{n}): equal sizes but different roots")
        return
    if not proof:
        raise VerifyError(f"consistency({m},{n}): empty proof")
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, old_root)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerifyError(f"consistency({m},{n}): proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerifyError(f"consistency({m},{n}): proof too short")
    if fr != old_root:
        raise VerifyError(f"consistency({m},{n}): reconstructed old root {b64e(fr)} != {b64e(old_root)}")
    if sr != new_root:
        raise VerifyError(f"consistency({m},{n}): reconstructed new root {b64e(sr)} != {b64e(new_root)}")


def rejects(fn, *args) -> bool:
    try:
        fn(*args)
    except VerifyError:
        return True
    return False


def flip(b: bytes, pos: int = 0) -> bytes:
    x = bytearray(b)
    x[pos % len(x)] ^= 0x01
    return bytes(x)


def tamper_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> int:
    """Checks that damaged variants of a valid inclusion proof are rejected; returns how many."""
    n = 0
    for j in range(len(proof)):
        bad = list(proof)
        bad[j] = flip(bad[j], j)
        if not rejects(verify_inclusion, index, size, leaf, bad, root):
            raise VerifyError(f"SELF-CHECK: tampered inclusion proof ({index},{size}) hash {j} accepted")
        n += 1
    variants = [
        ("flipped leaf", (index, size, flip(leaf), proof, root)),
        ("flipped root", (index, size, leaf, proof, flip(root))),
        ("extra hash", (index, size, leaf, proof + [leaf], root)),
    ]
    if proof:
        variants.append(("truncated", (index, size, leaf, proof[:-1], root)))
    if index + 1 < size:
        variants.append(("index+1", (index + 1, size, leaf, proof, root)))
    if index > 0:
        variants.append(("index-1", (index - 1, size, leaf, proof, root)))
    for name, a in variants:
        if not rejects(verify_inclusion, *a):
            raise VerifyError(f"SELF-CHECK: inclusion proof ({index},{size}) with {name} accepted")
        n += 1
    return n


def tamper_consistency(m: int, nsize: int, old: bytes, new: bytes, proof: list[bytes]) -> int:
    n = 0
    for j in range(len(proof)):
        bad = list(proof)
        bad[j] = flip(bad[j], j)
        if not rejects(verify_consistency, m, nsize, old, new, bad):
            raise VerifyError(f"SELF-CHECK: tampered consistency proof ({m},{nsize}) hash {j} accepted")
        n += 1
    variants = [
        ("flipped old root", (m, nsize, flip(old), new, proof)),
        ("flipped new root", (m, nsize, old, flip(new), proof)),
        ("extra hash", (m, nsize, old, new, proof + [old])),
    ]
    if proof:
        variants.append(("truncated", (m, nsize, old, new, proof[:-1])))
    for name, a in variants:
        if not rejects(verify_consistency, *a):
            raise VerifyError(f"SELF-CHECK: consistency proof ({m},{nsize}) with {name} accepted")
        n += 1
    return n


# --------------------------------------------------------------------------------------------
# Signed notes (c2sp.org/signed-note, Ed25519) and checkpoints (c2sp.org/tlog-checkpoint)
# --------------------------------------------------------------------------------------------

SIG_PREFIX = "\u2014 "  # em dash, space


class VerifierKey:
    def __init__(self, text: str):
        # <name>+<hex id>+<base64>: split at the first two '+' (base64 may itself contain '+').
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise UsageError(f"verifier key {text!r}: expected <name>+<hex id>+<base64 key>")
        name, hexid, b64 = parts
        if not name or any(c.isspace() for c in name):
            raise UsageError(f"verifier key: bad key name {name!r}")
        if len(hexid) != 8 or any(c not in "0123456789abcdef" for c in hexid):
            raise UsageError(f"verifier key: key id {hexid!r} is not 8 lowercase hex digits")
        try:
            raw = b64d(b64, "verifier key")
        except VerifyError as e:
            raise UsageError(str(e)) from None
        if len(raw) != 33 or raw[0] != 0x01:
            raise UsageError("verifier key: expected 0x01 (Ed25519) followed by a 32-byte public key")
        self.name = name
        self.pub = raw[1:]
        self.key_id = sha256(name.encode() + b"\n" + raw)[:4]
        if self.key_id.hex() != hexid:
            raise UsageError(
                f"verifier key: key id {hexid} does not match SHA-256(name||0x0A||0x01||key)[:4] = {self.key_id.hex()}"
            )
        self.key = Ed25519PublicKey.from_public_bytes(self.pub)


def verify_note(note: bytes, vkey: VerifierKey) -> str:
    """Verifies a signed note; returns its text (ending in a newline)."""
    try:
        s = note.decode("utf-8")
    except UnicodeDecodeError:
        raise VerifyError("note: not valid UTF-8") from None
    split = s.rfind("\n\n")
    if split < 0:
        raise VerifyError("note: no blank line between text and signatures")
    text, sigs = s[: split + 1], s[split + 2 :]
    if not text.strip("\n"):
        raise VerifyError("note: empty text")
    for c in text:
        if (ord(c) < 0x20 and c != "\n") or ord(c) == 0x7F:
            raise VerifyError(f"note: text contains control character {ord(c):#04x}")
    if not sigs.endswith("\n"):
        raise VerifyError("note: signature block does not end in a newline")
    good = 0
    for line in sigs[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise VerifyError(f"note: malformed signature line {line!r}")
        rest = line[len(SIG_PREFIX) :]
        if rest.count(" ") != 1:
            raise VerifyError(f"note: malformed signature line {line!r}")
        name, b64 = rest.split(" ")
        sig = b64d(b64, f"signature of {name}")
        if len(sig) < 5:
            raise VerifyError(f"note: signature of {name} too short")
        if name != vkey.name or sig[:4] != vkey.key_id:
            continue  # another key's line (e.g. a witness); not ours to judge
        if len(sig) != 4 + 64:
            raise VerifyError(f"note: Ed25519 signature of {name} is {len(sig) - 4} bytes, expected 64")
        try:
            vkey.key.verify(sig[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise VerifyError(f"note: signature by {name}+{vkey.key_id.hex()} does not verify") from None
        good += 1
    if good == 0:
        raise VerifyError(f"note: no signature line for key {vkey.name}+{vkey.key_id.hex()}")
    return text


class Checkpoint:
    def __init__(self, origin: str, size: int, root: bytes, raw: bytes):
        self.origin, self.size, self.root, self.raw = origin, size, root, raw


def verify_checkpoint(note: bytes, vkey: VerifierKey) -> Checkpoint:
    text = verify_note(note, vkey)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise VerifyError(f"checkpoint: expected at least 3 lines, got {len(lines)}")
    origin = lines[0]
    if not origin:
        raise VerifyError("checkpoint: empty origin")
    size = parse_decimal(lines[1], "checkpoint size")
    root = b64d(lines[2], "checkpoint root", 32)
    if any(not ln for ln in lines[3:]):
        raise VerifyError("checkpoint: empty extension line")
    if vkey.name != origin:
        raise VerifyError(f"checkpoint: key name {vkey.name!r} != origin {origin!r}")
    return Checkpoint(origin, size, root, note)


# --------------------------------------------------------------------------------------------
# Entries (LEDGER.md "Entries")
# --------------------------------------------------------------------------------------------

ENTRY_LEN = 42
TYPE_NAMES = {
    1: "resource-version",
    2: "resource-delete",
    3: "consent-version",
    4: "decision",
    5: "key-event",
}


def check_entry(e: bytes, index: int) -> tuple[int, int]:
    """Returns (type, time); raises on a malformed entry."""
    if len(e) != ENTRY_LEN:
        raise VerifyError(f"entry {index}: length {len(e)}, expected {ENTRY_LEN}")
    if e[0] != 1:
        raise VerifyError(f"entry {index}: format version {e[0]}, expected 1")
    if e[1] not in TYPE_NAMES:
        raise VerifyError(f"entry {index}: unknown entry type {e[1]}")
    t = int.from_bytes(e[34:42], "big")
    if t % 60:
        raise VerifyError(f"entry {index}: time {t} is not a multiple of 60")
    return e[1], t


def commitment(type_code: int, salt: bytes, payload: bytes) -> bytes:
    domain = b"anchorgate/v1/" + TYPE_NAMES[type_code].encode() + b"\x00"
    return sha256(domain + salt + payload)


# --------------------------------------------------------------------------------------------
# Tiles (c2sp.org/tlog-tiles)
# --------------------------------------------------------------------------------------------

TILE_H = 8
TILE_W = 1 << TILE_H


def tile_index_path(n: int) -> str:
    s = str(n)
    s = "0" * (-len(s) % 3) + s
    groups = [s[i : i + 3] for i in range(0, len(s), 3)]
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def tile_path(level, n: int, width: int = TILE_W) -> str:
    p = f"tile/{level}/{tile_index_path(n)}"
    if width < TILE_W:
        p += f".p/{width}"
    return p


def tiles_for(count: int) -> list[tuple[int, int]]:
    """(tile index, width) for a level holding `count` hashes (or entries)."""
    out = [(i, TILE_W) for i in range(count // TILE_W)]
    if count % TILE_W:
        out.append((count // TILE_W, count % TILE_W))
    return out


def parse_bundle(data: bytes, want: int, where: str) -> list[bytes]:
    out, off = [], 0
    while off < len(data):
        if off + 2 > len(data):
            raise VerifyError(f"{where}: truncated length prefix at byte {off}")
        ln = int.from_bytes(data[off : off + 2], "big")
        off += 2
        if off + ln > len(data):
            raise VerifyError(f"{where}: truncated entry at byte {off}")
        out.append(data[off : off + ln])
        off += ln
    if len(out) != want:
        raise VerifyError(f"{where}: holds {len(out)} entries, expected {want}")
    return out


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------


class Source:
    def __init__(self, url: str | None = None, directory: str | None = None):
        self.url = url.rstrip("/") if url else None
        self.dir = directory
        self.fetches = 0
        self.headers: dict[str, dict[str, str]] = {}

    def where(self, rel: str) -> str:
        return f"{self.url}/{rel}" if self.url else os.path.join(self.dir, rel)

    def get(self, rel: str) -> bytes | None:
        """The bytes at `rel`, or None when absent (HTTP 404 / no such file)."""
        self.fetches += 1
        if self.dir is not None:
            p = os.path.join(self.dir, *rel.split("/"))
            if not os.path.isfile(p):
                return None
            with open(p, "rb") as f:
                return f.read()
        return self.get_url(f"{self.url}/{rel}", rel)

    def get_url(self, url: str, key: str | None = None) -> bytes | None:
        req = urllib.request.Request(url, headers={"User-Agent": "anchorgate-verify_log.py"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                body = r.read()
                if key is not None:
                    self.headers[key] = {k.lower(): v for k, v in r.headers.items()}
                return body
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            detail = e.read()[:300].decode("utf-8", "replace")
            raise VerifyError(f"GET {url}: HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as e:
            raise VerifyError(f"GET {url}: {e}") from None

    def must(self, rel: str) -> bytes:
        data = self.get(rel)
        if data is None:
            raise VerifyError(f"missing: {self.where(rel)}")
        return data


def fetch_checkpoint(src: Source, vkey: VerifierKey) -> Checkpoint:
    return verify_checkpoint(src.must("checkpoint"), vkey)


def fetch_entries(src: Source, size: int) -> tuple[list[bytes], int]:
    """All entries of a tree of `size`, from its entry bundles; returns (entries, bundles fetched)."""
    entries: list[bytes] = []
    bundles = 0
    for n, w in tiles_for(size):
        rel = tile_path("entries", n, w)
        data = src.must(rel)
        bundles += 1
        for e in parse_bundle(data, w, rel):
            check_entry(e, len(entries))
            entries.append(e)
    return entries, bundles


# --------------------------------------------------------------------------------------------
# Subcommand: log
# --------------------------------------------------------------------------------------------


def check_immutable(src: Source, rel: str, immutable: bool) -> None:
    if src.url is None:
        return
    cc = src.headers.get(rel, {}).get("cache-control", "")
    has = "immutable" in [t.strip().lower() for t in cc.split(",")]
    if immutable and not has:
        raise VerifyError(f"{src.where(rel)}: tile served without Cache-Control: immutable (got {cc!r})")
    if not immutable and has:
        raise VerifyError(f"{src.where(rel)}: checkpoint served with Cache-Control: immutable")


def cmd_log(args) -> dict:
    vkey = VerifierKey(args.key)
    if bool(args.url) == bool(args.dir):
        raise UsageError("give exactly one of --url or --dir")
    if args.dir and not os.path.isdir(args.dir):
        raise UsageError(f"--dir {args.dir}: not a directory")
    t0 = time.monotonic()
    src = Source(url=args.url, directory=args.dir)
    cp = fetch_checkpoint(src, vkey)
    check_immutable(src, "checkpoint", False)
    size = cp.size

    entries, bundles = fetch_entries(src, size)
    for n, w in tiles_for(size):
        check_immutable(src, tile_path("entries", n, w), True)
    types: dict[str, int] = {}
    time_decreases = 0
    last_t = -1
    for i, e in enumerate(entries):
        ty, t = check_entry(e, i)
        types[TYPE_NAMES[ty]] = types.get(TYPE_NAMES[ty], 0) + 1
        if t < last_t:
            time_decreases += 1
        last_t = t

    # Hash tiles: level 0 = leaf hashes; level L+1 = roots of the full level-L tiles.
    level_hashes = [leaf_hash(e) for e in entries]
    tiles = 0
    level = 0
    computed_levels: list[list[bytes]] = []
    while level_hashes:
        expect_count = size >> (TILE_H * level)
        if len(level_hashes) != expect_count:
            raise VerifyError(f"internal: level {level} has {len(level_hashes)} hashes, expected {expect_count}")
        computed_levels.append(level_hashes)
        for n, w in tiles_for(len(level_hashes)):
            rel = tile_path(level, n, w)
            data = src.must(rel)
            check_immutable(src, rel, True)
            tiles += 1
            want = b"".join(level_hashes[n * TILE_W : n * TILE_W + w])
            if len(data) != 32 * w:
                raise VerifyError(f"{src.where(rel)}: {len(data)} bytes, expected {32 * w}")
            if data != want:
                bad = next(k for k in range(w) if data[32 * k : 32 * k + 32] != want[32 * k : 32 * k + 32])
                raise VerifyError(
                    f"{src.where(rel)}: hash {bad} (tree level {TILE_H * level}, node {n * TILE_W + bad}) is "
                    f"{data[32 * bad:32 * bad + 32].hex()}, recomputed {want[32 * bad:32 * bad + 32].hex()}"
                )
        level_hashes = [
            mth_list(level_hashes[k * TILE_W : (k + 1) * TILE_W]) for k in range(len(level_hashes) // TILE_W)
        ]
        level += 1

    root = Tree([leaf_hash(e) for e in entries]).root(size)
    if root != cp.root:
        raise VerifyError(f"root recomputed from {size} entries {b64e(root)} != checkpoint root {b64e(cp.root)}")

    out = {
        "ok": True,
        "origin": cp.origin,
        "size": size,
        "root": b64e(cp.root),
        "entries": len(entries),
        "tiles": tiles,
        "entry_bundles": bundles,
        "entry_types": types,
        "time_decreases": time_decreases,
    }
    if args.dir:
        out.update(check_mirror_extras(args.dir, computed_levels, entries, size))
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out


def check_mirror_extras(root_dir: str, levels: list[list[bytes]], entries: list[bytes], size: int) -> dict:
    """Older partial tiles left in a mirror must still be prefixes of the current tiles."""
    checked = beyond = 0
    base = os.path.join(root_dir, "tile")
    for dirpath, _dirs, files in os.walk(base):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), base).replace(os.sep, "/")
            parts = rel.split("/")
            lvl = parts[0]
            rest = parts[1:]
            width = TILE_W
            if len(rest) >= 2 and rest[-2].endswith(".p"):
                width = int(rest[-1])
                rest = rest[:-2] + [rest[-2][:-2]]
            try:
                n = int("".join(g.lstrip("x") for g in rest))
            except ValueError:
                raise VerifyError(f"mirror: unexpected file tile/{rel}") from None
            if tile_path(lvl if lvl == "entries" else int(lvl), n, width) != "tile/" + rel:
                raise VerifyError(f"mirror: non-canonical tile path tile/{rel}")
            with open(os.path.join(base, *rel.split("/")), "rb") as fh:
                data = fh.read()
            start = n * TILE_W
            if lvl == "entries":
                have = len(entries)
                if start + width > have:
                    beyond += 1
                    continue
                want = b"".join(len(e).to_bytes(2, "big") + e for e in entries[start : start + width])
            else:
                L = int(lvl)
                have = len(levels[L]) if L < len(levels) else 0
                if start + width > have:
                    beyond += 1
                    continue
                want = b"".join(levels[L][start : start + width])
            if data != want:
                raise VerifyError(f"mirror: tile/{rel} is not a prefix of the tile recomputed at size {size}")
            checked += 1
    return {"mirror_files_checked": checked, "mirror_files_beyond_checkpoint": beyond}


# --------------------------------------------------------------------------------------------
# Subcommand: proofs
# --------------------------------------------------------------------------------------------


def spread(lo: int, hi: int, k: int) -> list[int]:
    """k values spread over [lo, hi] inclusive (all of them when the range is small)."""
    if hi - lo + 1 <= k:
        return list(range(lo, hi + 1))
    return sorted({lo + round(i * (hi - lo) / (k - 1)) for i in range(k)})


def get_json(src: Source, path_query: str) -> dict:
    url = f"{src.url}/{path_query}"
    body = src.get_url(url)
    if body is None:
        raise VerifyError(f"GET {url}: 404")
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise VerifyError(f"GET {url}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise VerifyError(f"GET {url}: not a JSON object")
    return doc


def proof_hashes(doc: dict, what: str) -> list[bytes]:
    hs = doc.get("hashes")
    if not isinstance(hs, list):
        raise VerifyError(f"{what}: 'hashes' is not a list")
    return [b64d(h, f"{what} hash {i}", 32) for i, h in enumerate(hs)]


def cmd_proofs(args) -> dict:
    vkey = VerifierKey(args.key)
    t0 = time.monotonic()
    src = Source(url=args.url)
    cp = fetch_checkpoint(src, vkey)
    n = cp.size
    if n == 0:
        raise VerifyError("checkpoint size is 0: nothing to prove")
    entries, _ = fetch_entries(src, n)
    tree = Tree([leaf_hash(e) for e in entries])
    if tree.root(n) != cp.root:
        raise VerifyError(f"root recomputed from entries {b64e(tree.root(n))} != checkpoint root {b64e(cp.root)}")

    idx = spread(1, n - 2, 64) if n > 64 else list(range(n))
    idx = sorted(set(idx) | {0, n - 1})
    inc = tampered = 0
    for i in idx:
        what = f"inclusion proof index={i} size={n}"
        doc = get_json(src, f"proof/inclusion?index={i}&size={n}")
        if doc.get("index") != i or doc.get("size") != n:
            raise VerifyError(f"{what}: answered index={doc.get('index')} size={doc.get('size')}")
        if b64d(doc.get("root"), f"{what} root", 32) != cp.root:
            raise VerifyError(f"{what}: root {doc.get('root')} != checkpoint root {b64e(cp.root)}")
        hs = proof_hashes(doc, what)
        verify_inclusion(i, n, tree.leaves[i], hs, cp.root)
        # Our proof generator must agree with the served proof (both RFC 9162 PATH).
        if hs != tree.inclusion_proof(i, 0, n):
            raise VerifyError(f"{what}: verifies, but differs from RFC 9162 PATH({i}, D[{n}])")
        tampered += tamper_inclusion(i, n, tree.leaves[i], hs, cp.root)
        inc += 1

    specials = {1, n, n - 1, 2, 3}
    p = 1
    while p <= n:
        specials |= {p, p - 1, p + 1}
        p *= 2
    for k in (255, 256, 257, 511, 512, 513, 65535, 65536, 65537):
        specials.add(k)
    olds = sorted({m for m in set(spread(1, n, 64)) | specials if 1 <= m <= n})
    cons = 0
    for m in olds:
        what = f"consistency proof old={m} new={n}"
        doc = get_json(src, f"proof/consistency?old={m}&new={n}")
        if doc.get("old") != m or doc.get("new") != n:
            raise VerifyError(f"{what}: answered old={doc.get('old')} new={doc.get('new')}")
        old_root = tree.root(m)
        if b64d(doc.get("old_root"), f"{what} old_root", 32) != old_root:
            raise VerifyError(f"{what}: old_root {doc.get('old_root')} != recomputed {b64e(old_root)}")
        if b64d(doc.get("new_root"), f"{what} new_root", 32) != cp.root:
            raise VerifyError(f"{what}: new_root {doc.get('new_root')} != checkpoint root {b64e(cp.root)}")
        hs = proof_hashes(doc, what)
        verify_consistency(m, n, old_root, cp.root, hs)
        if hs != tree.consistency_proof(m, n):
            raise VerifyError(f"{what}: verifies, but differs from RFC 9162 PROOF({m}, D[{n}])")
        if m < n:
            tampered += tamper_consistency(m, n, old_root, cp.root, hs)
        cons += 1

    return {
        "ok": True,
        "origin": cp.origin,
        "size": n,
        "root": b64e(cp.root),
        "inclusion_verified": inc,
        "consistency_verified": cons,
        "tampered_rejected": tampered,
        "seconds": round(time.monotonic() - t0, 3),
    }


# --------------------------------------------------------------------------------------------
# Canonical form (CANONICAL.md): JCS with numbers kept in their lexical form
# --------------------------------------------------------------------------------------------


class Num:
    """A JSON number, kept as its exact source text."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"Num({self.text})"


def _no_dups(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise VerifyError(f"JSON: duplicate member name {k!r}")
        d[k] = v
    return d


def _bad_constant(c):
    raise VerifyError(f"JSON: {c} is not a JSON value")


def parse_json_exact(data: bytes | str):
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise VerifyError("JSON: not valid UTF-8") from None
    try:
        return json.loads(
            data, parse_float=Num, parse_int=Num, parse_constant=_bad_constant, object_pairs_hook=_no_dups
        )
    except ValueError as e:
        raise VerifyError(f"JSON: {e}") from None


_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def jcs_string(s: str) -> str:
    out = ['"']
    for c in s:
        if c in _SHORT:
            out.append(_SHORT[c])
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04x}")
        elif 0xD800 <= ord(c) <= 0xDFFF:
            raise VerifyError(f"JSON: lone surrogate U+{ord(c):04X} in a string")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _utf16_key(k: str) -> bytes:
    try:
        return k.encode("utf-16-be")
    except UnicodeEncodeError:
        raise VerifyError(f"JSON: lone surrogate in member name {k!r}") from None


def jcs(v) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, Num):
        return v.text
    if isinstance(v, str):
        return jcs_string(v)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v.keys(), key=_utf16_key)
        return "{" + ",".join(jcs_string(k) + ":" + jcs(v[k]) for k in keys) + "}"
    raise VerifyError(f"JSON: unexpected value {v!r}")


SERVER_META = ("versionId", "lastUpdated", "_versionId", "_lastUpdated")


def _split_base(url: str):
    """(scheme, host, port, path) of an absolute http(s) URL, or None (CANONICAL.md step 0)."""
    import urllib.parse
    try:
        u = urllib.parse.urlsplit(url)
        port = u.port
    except ValueError:
        return None
    scheme = u.scheme.lower()
    if scheme not in ("http", "https") or not u.hostname or "@" in u.netloc:
        return None
    if port is None:
        port = 80 if scheme == "http" else 443
    return scheme, u.hostname.lower(), port, u.path


def relativise(value, base: str | None):
    """Absolute URLs under `base` (the FHIR base the resource was read from) made relative to it."""
    if base is None:
        return value
    b = _split_base(base.rstrip("/"))
    if b is None:
        raise VerifyError(f"--base {base!r} is not an absolute http(s) URL")
    bpath = b[3].rstrip("/")

    def one(s: str) -> str:
        u = _split_base(s)
        if u is None or u[:3] != b[:3]:
            return s
        # The path is compared on the raw text after the authority, as the spec says.
        after = s.split("://", 1)[1]
        cut = min([i for i in (after.find("/"), after.find("?"), after.find("#")) if i >= 0] or [len(after)])
        rest = after[cut:]
        if not rest.startswith(bpath):
            return s
        rem = rest[len(bpath):]
        if rem and rem[0] not in "/?#":
            return s
        return rem[1:] if rem.startswith("/") else rem

    def walk(v):
        if isinstance(v, str):
            return one(v)
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(value)


def canonical_bytes(resource) -> bytes:
    if not isinstance(resource, dict):
        raise VerifyError("resource: not a JSON object")
    r = dict(resource)
    meta = r.get("meta")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in SERVER_META}
        if meta:
            r["meta"] = meta
        else:
            del r["meta"]
    return jcs(r).encode("utf-8")


# --------------------------------------------------------------------------------------------
# Subcommand: receipt
# --------------------------------------------------------------------------------------------


def parse_tlog_proof(text: str) -> tuple[bytes | None, int, list[bytes], bytes]:
    lines = text.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        raise VerifyError(f"tlog-proof: first line {lines[0]!r}, expected 'c2sp.org/tlog-proof@v1'")
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = b64d(lines[pos][len("extra ") :], "tlog-proof extra")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise VerifyError("tlog-proof: missing 'index' line")
    index = parse_decimal(lines[pos][len("index ") :], "tlog-proof index")
    pos += 1
    hashes = []
    while pos < len(lines) and lines[pos] != "":
        hashes.append(b64d(lines[pos], f"tlog-proof hash {len(hashes)}", 32))
        pos += 1
    if pos >= len(lines):
        raise VerifyError("tlog-proof: no empty line before the checkpoint")
    checkpoint = "\n".join(lines[pos + 1 :]).encode("utf-8")
    return extra, index, hashes, checkpoint


def params_by_name(doc) -> dict:
    if not isinstance(doc, dict) or doc.get("resourceType") != "Parameters":
        raise VerifyError("receipt: not a FHIR Parameters resource")
    out: dict = {}
    for p in doc.get("parameter", []):
        name = p.get("name")
        if name in out:
            raise VerifyError(f"receipt: parameter {name!r} repeated")
        out[name] = p
    return out


def param_value(params: dict, name: str, kind: str):
    p = params.get(name)
    if p is None:
        raise VerifyError(f"receipt: parameter {name!r} missing")
    key = "value" + kind
    if key not in p:
        raise VerifyError(f"receipt: parameter {name!r} has no {key}")
    return p[key]


def read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"{path}: {e}") from None


def parse_receipt_proof(text: str) -> tuple[bytes, bytes, int, list[bytes], bytes]:
    """A receipt's c2sp.org/tlog-proof: (entry, salt, index, inclusion hashes, checkpoint note)."""
    extra, index, hashes, cp_note = parse_tlog_proof(text)
    if extra is None:
        raise VerifyError("tlog-proof: no 'extra' line (entry || salt)")
    if len(extra) != ENTRY_LEN + 32:
        raise VerifyError(f"tlog-proof extra: {len(extra)} bytes, expected 42 + 32")
    return extra[:ENTRY_LEN], extra[ENTRY_LEN:], index, hashes, cp_note


def cmd_receipt(args) -> dict:
    vkey = VerifierKey(args.key)
    params = params_by_name(parse_json_exact(read_file(args.receipt)))
    resource = parse_json_exact(read_file(args.resource))

    entry, salt, index, hashes, cp_note = parse_receipt_proof(param_value(params, "proof", "String"))
    ty, t = check_entry(entry, index)

    if ty == 2:
        rt, rid = resource.get("resourceType"), resource.get("id")
        if not isinstance(rt, str) or not isinstance(rid, str):
            raise VerifyError("resource-delete receipt: resource file lacks resourceType/id")
        payload = f"{rt}/{rid}".encode("ascii")
        canon = None
    elif ty in (1, 3):
        if ty == 3 and resource.get("resourceType") != "Consent":
            raise VerifyError(f"entry type consent-version but the resource is a {resource.get('resourceType')}")
        canon = canonical_bytes(relativise(resource, args.base))
        payload = canon
    else:
        raise VerifyError(f"entry type {TYPE_NAMES[ty]} does not commit to a resource version")

    c = commitment(ty, salt, payload)
    if c != entry[2:34]:
        hint = ""
        if canon is not None:
            hint = f" (our canonical form: {len(canon)} bytes, SHA-256 {sha256(canon).hex()}"
            p = params.get("canonicalSha256", {}).get("valueBase64Binary")
            if isinstance(p, str):
                try:
                    same = base64.b64decode(p) == sha256(canon)
                except (binascii.Error, ValueError):
                    same = False
                hint += "; the receipt's canonicalSha256 " + ("agrees" if same else f"is {base64.b64decode(p).hex()}: the resource given is not the content that was anchored")
            hint += ")"
        raise VerifyError(
            f"commitment SHA-256(domain||salt||payload) = {c.hex()} != entry commitment {entry[2:34].hex()}" + hint
        )

    cp = verify_checkpoint(cp_note, vkey)
    verify_inclusion(index, cp.size, leaf_hash(entry), hashes, cp.root)

    # The Parameters' convenience copies must agree with the proof.
    if canon is not None:
        cs = b64d(param_value(params, "canonicalSha256", "Base64Binary"), "canonicalSha256", 32)
        if cs != sha256(canon):
            raise VerifyError(
                f"canonicalSha256 {cs.hex()} != SHA-256 of our canonical bytes {sha256(canon).hex()}"
            )
    if b64d(param_value(params, "entry", "Base64Binary"), "entry parameter") != entry:
        raise VerifyError("receipt: 'entry' parameter differs from the entry in the proof's extra")
    if b64d(param_value(params, "salt", "Base64Binary"), "salt parameter") != salt:
        raise VerifyError("receipt: 'salt' parameter differs from the salt in the proof's extra")
    if "leafIndex" in params and param_value(params, "leafIndex", "String") != str(index):
        raise VerifyError("receipt: 'leafIndex' parameter differs from the proof's index")
    if "entryType" in params and param_value(params, "entryType", "Code") != TYPE_NAMES[ty]:
        raise VerifyError("receipt: 'entryType' parameter differs from the entry's type")
    if "checkpoint" in params and param_value(params, "checkpoint", "String").encode() != cp_note:
        raise VerifyError("receipt: 'checkpoint' parameter differs from the proof's checkpoint")

    out = {
        "ok": True,
        "index": index,
        "type": TYPE_NAMES[ty],
        "size": cp.size,
        "origin": cp.origin,
        "time": t,
    }
    if canon is not None:
        out["canonical_sha256"] = sha256(canon).hex()
        out["canonical_bytes"] = len(canon)
    return out


# --------------------------------------------------------------------------------------------
# Subcommand: decision
# --------------------------------------------------------------------------------------------


def cmd_decision(args) -> dict:
    """A decision record as GET /audit/decisions/{id} serves it, checked offline against the log: its
    commitment recomputed from the record (leaf set to null, canonical form) and the proof's salt, the
    entry hashed as a leaf, the inclusion proof walked to the signed checkpoint (LEDGER.md)."""
    vkey = VerifierKey(args.key)
    doc = parse_json_exact(read_file(args.response))
    record = doc.get("decision") if isinstance(doc, dict) else None
    if not isinstance(record, dict):
        raise VerifyError("decision: not an /audit/decisions/{id} answer (no 'decision' object)")
    proof = doc.get("proof")
    if not isinstance(proof, dict) or not isinstance(proof.get("receipt"), str):
        raise VerifyError(f"decision: no proof.receipt ({doc.get('proofUnavailable', 'no ledger proof served')})")
    entry, salt, index, hashes, cp_note = parse_receipt_proof(proof["receipt"])
    ty, t = check_entry(entry, index)
    if ty != 4:
        raise VerifyError(f"decision: the proof's entry is a {TYPE_NAMES[ty]} entry, not a decision")
    leaf = record.get("leaf")
    if not isinstance(leaf, Num) or leaf.text != str(index):
        raise VerifyError(f"decision: the record names leaf {leaf!r}, the proof index {index}")
    payload = canonical_bytes({**record, "leaf": None})
    c = commitment(ty, salt, payload)
    if c != entry[2:34]:
        raise VerifyError(
            f"commitment SHA-256(domain||salt||record) = {c.hex()} != entry commitment {entry[2:34].hex()}: "
            "the record served is not the one anchored"
        )
    cp = verify_checkpoint(cp_note, vkey)
    verify_inclusion(index, cp.size, leaf_hash(entry), hashes, cp.root)

    # The answer's convenience copies must agree with the proof.
    def field(name: str, length: int | None = None) -> bytes:
        v = proof.get(name)
        if not isinstance(v, str):
            raise VerifyError(f"decision: proof.{name} missing")
        return b64d(v, f"proof.{name}", length)

    if field("committedSha256", 32) != sha256(payload):
        raise VerifyError("decision: proof.committedSha256 is not the SHA-256 of the record's canonical form")
    if field("entry") != entry or field("salt", 32) != salt:
        raise VerifyError("decision: proof.entry or proof.salt differs from the receipt's extra")
    leaf_index = proof.get("leafIndex")
    if not isinstance(leaf_index, Num) or leaf_index.text != str(index) or proof.get("checkpoint", "").encode() != cp_note:
        raise VerifyError("decision: proof.leafIndex or proof.checkpoint differs from the receipt")
    if [b64d(h, "proof.inclusion") for h in proof.get("inclusion", [])] != hashes:
        raise VerifyError("decision: proof.inclusion differs from the receipt's hashes")
    return {"ok": True, "index": index, "type": "decision", "size": cp.size, "origin": cp.origin, "time": t}


# --------------------------------------------------------------------------------------------
# Subcommand: selftest
# --------------------------------------------------------------------------------------------

RFC6962_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
RFC6962_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, path), zero-based, from the Certificate Transparency reference tests.
RFC6962_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
RFC6962_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
GO_NOTE_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_NOTE_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise VerifyError(f"selftest: {what}")


def cmd_selftest(args) -> dict:
    checks = 0
    leaves = [leaf_hash(bytes.fromhex(h)) for h in RFC6962_LEAVES]
    tree = Tree(leaves)
    for n, want in enumerate(RFC6962_ROOTS):
        expect(tree.root(n).hex() == want, f"root of {n} leaves")
        checks += 1
    hx = lambda hs: [bytes.fromhex(h) for h in hs]  # noqa: E731
    for i, n, path in RFC6962_INCLUSION:
        verify_inclusion(i, n, leaves[i], hx(path), tree.root(n))
        expect(tree.inclusion_proof(i, 0, n) == hx(path), f"PATH({i},{n}) vector")
        checks += 2
    for m, n, path in RFC6962_CONSISTENCY:
        verify_consistency(m, n, tree.root(m), tree.root(n), hx(path))
        expect(tree.consistency_proof(m, n) == hx(path), f"PROOF({m},{n}) vector")
        checks += 2
    tampered = 0
    for n in range(1, 9):
        for i in range(n):
            p = tree.inclusion_proof(i, 0, n)
            verify_inclusion(i, n, leaves[i], p, tree.root(n))
            tampered += tamper_inclusion(i, n, leaves[i], p, tree.root(n))
            checks += 1
        for m in range(1, n + 1):
            p = tree.consistency_proof(m, n)
            verify_consistency(m, n, tree.root(m), tree.root(n), p)
            if m < n:
                tampered += tamper_consistency(m, n, tree.root(m), tree.root(n), p)
                # a proof for (m, n) must not pass as one for other sizes
                for m2 in range(1, n):
                    if m2 != m:
                        expect(
                            rejects(verify_consistency, m2, n, tree.root(m2), tree.root(n), p)
                            or tree.consistency_proof(m2, n) == p,
                            f"consistency proof ({m},{n}) accepted for old size {m2}",
                        )
            checks += 1
    expect(rejects(verify_inclusion, 8, 8, leaves[0], [], tree.root(8)), "index == size rejected")
    expect(rejects(verify_consistency, 0, 8, EMPTY_ROOT, tree.root(8), []), "old size 0 rejected")
    expect(rejects(verify_consistency, 3, 8, tree.root(3), tree.root(8), []), "empty proof rejected")

    # A larger random tree: generated proofs verify, tampered ones do not; tile roots agree.
    rng = random.Random(6962)
    big = Tree([leaf_hash(rng.randbytes(42)) for _ in range(1000)])
    for _ in range(200):
        n = rng.randint(1, 1000)
        i = rng.randrange(n)
        m = rng.randint(1, n)
        verify_inclusion(i, n, big.leaves[i], big.inclusion_proof(i, 0, n), big.root(n))
        verify_consistency(m, n, big.root(m), big.root(n), big.consistency_proof(m, n))
        tampered += tamper_inclusion(i, n, big.leaves[i], big.inclusion_proof(i, 0, n), big.root(n))
        if m < n:
            tampered += tamper_consistency(m, n, big.root(m), big.root(n), big.consistency_proof(m, n))
        checks += 2
    expect(
        big.mth(0, 512) == mth_list([mth_list(big.leaves[0:256]), mth_list(big.leaves[256:512])]),
        "level-1 tile hashes compose to the subtree root",
    )
    expect(tile_path(0, 1234067) == "tile/0/x001/x234/067", "tile path x001/x234/067")
    expect(tile_path(0, 0, 9) == "tile/0/000.p/9", "tile path 000.p/9")
    expect(tile_path("entries", 1000) == "tile/entries/x001/000", "tile path x001/000")
    checks += 4

    # Signed note: the Go golang.org/x/mod/sumdb/note example.
    vk = VerifierKey(GO_NOTE_VKEY)
    note = (GO_NOTE_TEXT + "\n" + GO_NOTE_SIG).encode()
    expect(verify_note(note, vk) == GO_NOTE_TEXT, "Go note text")
    bad_text = note.replace(b"answer", b"Answer")
    expect(rejects(verify_note, bad_text, vk), "Go note with altered text rejected")
    sig_b64 = GO_NOTE_SIG.split(" ")[2].strip()
    raw = bytearray(base64.b64decode(sig_b64))
    raw[10] ^= 1
    bad_sig = (GO_NOTE_TEXT + "\n\u2014 PeterNeumann " + b64e(bytes(raw)) + "\n").encode()
    expect(rejects(verify_note, bad_sig, vk), "Go note with altered signature rejected")
    only_other = (GO_NOTE_TEXT + "\n\u2014 SomeoneElse " + sig_b64 + "\n").encode()
    expect(rejects(verify_note, only_other, vk), "note without our key's line rejected")
    try:
        VerifierKey("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        expect(False, "verifier key with wrong key id rejected")
    except UsageError:
        pass
    checks += 5

    # Canonical form: RFC 8785 key order and escaping, FHIR number lexical forms, meta exclusion.
    src = (
        '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh",'
        '"1":"One","\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}'
    )
    got = jcs(parse_json_exact(src))
    want = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",'
        '"\u20ac":"Euro Sign","\U0001F600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    expect(got == want, f"RFC 8785 §3.2.3 sort order: {got}")
    got = jcs(parse_json_exact('["\\u0000\\u001f\\b\\t\\n\\f\\r\\"\\\\\\/\\u007f\\u2028\\u00e9"]'))
    expect(got == '["\\u0000\\u001f\\b\\t\\n\\f\\r\\"\\\\/\u007f\u2028\u00e9"]', f"string escaping: {got}")
    got = jcs(parse_json_exact('{ "b" : [ 1.50 , -0 , 1E+2 , 0.1000000000000000000001 , 12345678901234567890 ] , "a" : true , "c" : null, "d": false }'))
    expect(got == '{"a":true,"b":[1.50,-0,1E+2,0.1000000000000000000001,12345678901234567890],"c":null,"d":false}', f"numbers: {got}")
    r = parse_json_exact(
        '{"resourceType":"Patient","id":"x","meta":{"versionId":"3","lastUpdated":"2020-01-01T00:00:00Z",'
        '"_versionId":{"extension":[]},"_lastUpdated":{}},"contained":[{"resourceType":"Patient","meta":{"versionId":"1"}}]}'
    )
    got = canonical_bytes(r).decode()
    expect(got == '{"contained":[{"meta":{"versionId":"1"},"resourceType":"Patient"}],"id":"x","resourceType":"Patient"}', f"meta exclusion: {got}")
    r = parse_json_exact('{"resourceType":"Patient","meta":{"versionId":"3","tag":[{"code":"a"}]}}')
    got = canonical_bytes(r).decode()
    expect(got == '{"meta":{"tag":[{"code":"a"}]},"resourceType":"Patient"}', f"meta kept: {got}")
    expect(rejects(parse_json_exact, '{"a":1,"a":2}'), "duplicate names rejected")
    expect(rejects(parse_json_exact, '[NaN]'), "NaN rejected")
    expect(rejects(jcs, parse_json_exact('["\\ud800"]')), "lone surrogate rejected")
    checks += 8

    # Entries and commitments.
    e = bytes([1, 1]) + bytes(32) + (60 * 1000).to_bytes(8, "big")
    check_entry(e, 0)
    expect(rejects(check_entry, e[:41], 0), "41-byte entry rejected")
    expect(rejects(check_entry, bytes([2]) + e[1:], 0), "version 2 rejected")
    expect(rejects(check_entry, e[:1] + bytes([6]) + e[2:], 0), "type 6 rejected")
    expect(rejects(check_entry, e[:1] + bytes([0]) + e[2:], 0), "type 0 rejected")
    expect(rejects(check_entry, e[:34] + (61).to_bytes(8, "big"), 0), "time 61 rejected")
    expect(
        commitment(2, bytes(32), b"Patient/1")
        == sha256(b"anchorgate/v1/resource-delete\x00" + bytes(32) + b"Patient/1"),
        "commitment domain",
    )
    checks += 7
    return {"ok": True, "checks": checks, "tampered_rejected": tampered}


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(json.dumps({"ok": False, "error": f"usage: {message}"}))
        sys.exit(2)


def main(argv=None) -> int:
    ap = Parser(prog="verify_log.py", description="Independent verifier for the Anchorgate ledger.")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=Parser)

    p = sub.add_parser("log", help="verify the whole log: checkpoint, entry bundles, hash tiles, root")
    p.add_argument("--url", help="ledger base URL, e.g. http://127.0.0.1:8392/ledger")
    p.add_argument("--dir", help="mirror directory (holding checkpoint and tile/)")
    p.add_argument("--key", required=True, help="verifier key <name>+<id>+<base64>")
    p.set_defaults(fn=cmd_log)

    p = sub.add_parser("proofs", help="verify the gateway's inclusion and consistency proofs")
    p.add_argument("--url", required=True, help="ledger base URL")
    p.add_argument("--key", required=True, help="verifier key")
    p.set_defaults(fn=cmd_proofs)

    p = sub.add_parser("receipt", help="verify a $receipt against a resource version")
    p.add_argument("--receipt", required=True, help="the Parameters JSON returned by $receipt")
    p.add_argument("--resource", required=True, help="the FHIR JSON of the version")
    p.add_argument("--base", help="the FHIR base the resource was read from (CANONICAL.md step 0)")
    p.add_argument("--key", required=True, help="verifier key")
    p.set_defaults(fn=cmd_receipt)

    p = sub.add_parser("decision", help="verify a decision record (GET /audit/decisions/{id}) against the log")
    p.add_argument("--response", required=True, help="the JSON answer of GET /audit/decisions/{id}")
    p.add_argument("--key", required=True, help="verifier key")
    p.set_defaults(fn=cmd_decision)

    p = sub.add_parser("selftest", help="check hashing, proofs, notes and JCS against published vectors")
    p.set_defaults(fn=cmd_selftest)

    args = ap.parse_args(argv)
    try:
        out = args.fn(args)
    except UsageError as e:
        print(json.dumps({"ok": False, "cmd": args.cmd, "error": f"usage: {e}"}))
        print(f"verify_log.py {args.cmd}: usage error: {e}", file=sys.stderr)
        return 2
    except VerifyError as e:
        print(json.dumps({"ok": False, "cmd": args.cmd, "error": str(e)}))
        print(f"verify_log.py {args.cmd}: VERIFICATION FAILED: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
