"""Binary Merkle trees over byte strings (RFC 6962 shape, sha256).

Used for a block's tx root (leaves = tx ids) and its chunk commitment
(leaves = the block payload's 64 KiB chunks).  ``docs/formats/zap.md`` §Merkle
pins the construction:

* ``leaf_hash(x)     = sha256(0x00 || x)``
* ``node_hash(l, r)  = sha256(0x01 || l || r)``
* ``root([])         = sha256(b"")``; ``root([x]) = leaf_hash(x)``
* for n > 1, split at k = the largest power of two < n:
  ``root(d[0:n]) = node_hash(root(d[0:k]), root(d[k:n]))``.

An inclusion proof for leaf i is the RFC 6962 audit path (sibling hashes,
bottom-up).  No duplication of odd leaves, so no second-preimage ambiguity.

``root_of_leaf_hashes`` is the fast iterative form; ``_root_reference`` is the
readable recursive one; tests keep them equal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from zapstack.errors import LocalProtocolError

__all__ = [
    "CHUNK_SIZE",
    "chunk_count",
    "chunk_root",
    "chunk_slices",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of_leaf_hashes",
    "verify_inclusion",
]

CHUNK_SIZE = 64 * 1024
"""The light-client chunk size (LP-0202: 64 KiB)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()

Buf = bytes | bytearray | memoryview


def leaf_hash(data: Buf) -> bytes:
    """sha256(0x00 || data)."""
    h = hashlib.sha256(b"\x00")
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """sha256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root_reference(hashes: Sequence[bytes]) -> bytes:
    """Readable recursive definition over leaf hashes (n >= 1)."""
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(_root_reference(hashes[:k]), _root_reference(hashes[k:]))


def root_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Merkle root over already-hashed leaves; equals the recursive definition.

    Iterative: pair adjacent nodes level by level and carry an odd last node up
    unchanged -- which yields exactly the RFC 6962 split-at-power-of-two tree.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path (bottom-up sibling hashes) for leaf ``index`` of ``hashes``."""
    if not 0 <= index < len(hashes):
        raise LocalProtocolError(f"leaf index {index} outside 0..{len(hashes) - 1}")
    path: list[bytes] = []
    lo, hi, i = 0, len(hashes), index
    # walk top-down collecting siblings, then reverse to bottom-up
    while hi - lo > 1:
        k = _split(hi - lo)
        if i - lo < k:
            path.append(_root_reference(hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(_root_reference(hashes[lo : lo + k]))
            lo = lo + k
    path.reverse()
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """True iff ``leaf`` (a leaf hash) is leaf ``index`` of a tree of ``size`` with ``root``."""
    if not 0 <= index < size:
        return False
    # Recompute top-down split decisions, then fold bottom-up.
    sides: list[bool] = []  # True = our node is the right child at that level
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            sides.append(False)
            hi = lo + k
        else:
            sides.append(True)
            lo = lo + k
    if len(sides) != len(path):
        return False
    node = leaf
    for is_right, sibling in zip(reversed(sides), path, strict=True):
        node = node_hash(sibling, node) if is_right else node_hash(node, sibling)
    return node == root


def chunk_count(payload_len: int) -> int:
    """Number of 64 KiB chunks of a payload (0 for an empty payload)."""
    return (payload_len + CHUNK_SIZE - 1) // CHUNK_SIZE


def chunk_slices(payload: Buf) -> list[memoryview]:
    """The payload's chunks as zero-copy memoryview slices."""
    mv = memoryview(payload)
    return [mv[i : i + CHUNK_SIZE] for i in range(0, len(mv), CHUNK_SIZE)]


def chunk_root(payload: Buf) -> bytes:
    """The chunk commitment: Merkle root over leaf_hash(chunk_i)."""
    return root_of_leaf_hashes([leaf_hash(c) for c in chunk_slices(payload)])
