"""A readable model of the state root, its proofs and its chunks.

Written from ``docs/formats/state-root.md`` alone: it imports nothing from
:mod:`zapstack.zapdb`.  Everything works on a plain ``dict`` of key -> value and
recomputes hashes from scratch (quadratic in places); it is for vectors and
tests, not for a node.

* :func:`root` -- the definition ``H(S, d)``;
* :func:`prove` / :func:`verify_proof` -- the (non-)membership proof of a key;
* :func:`chunk` / :func:`verify_chunk` -- the state chunk ``(depth, index)``.

A proof is ``(siblings, terminal)`` and a chunk is ``(entries, siblings,
terminal)``, with ``terminal`` None or the 64 bytes ``kh || vh``, exactly the
fields of the doc.  Verifiers return False on any bad input; they never raise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY",
    "MAX_CHUNK_DEPTH",
    "Leaf",
    "bit",
    "chunk",
    "h",
    "kh",
    "leaf_hash",
    "node_hash",
    "prove",
    "root",
    "verify_chunk",
    "verify_proof",
]

EMPTY = bytes(32)
MAX_CHUNK_DEPTH = 24

Leaf = tuple[bytes, bytes]
"""``(kh, vh)``."""


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def kh(key: bytes) -> bytes:
    """``kh(key) = sha256(key)``: the 256-bit path."""
    return _sha(key)


def bit(path: bytes, i: int) -> int:
    """Bit ``i`` of a path: bit 0 is the most significant bit of byte 0."""
    return (path[i // 8] >> (7 - i % 8)) & 1


def leaf_hash(k: bytes, v: bytes) -> bytes:
    """``sha256(0x00 || kh || vh)``."""
    return _sha(b"\x00" + k + v)


def node_hash(left: bytes, right: bytes) -> bytes:
    """``sha256(0x01 || left || right)``."""
    return _sha(b"\x01" + left + right)


def _leaves(state: dict[bytes, bytes]) -> list[Leaf]:
    return [(kh(key), _sha(value)) for key, value in state.items()]


def h(leaves: Sequence[Leaf], d: int) -> bytes:
    """``H(S, d)`` for leaves sharing their first ``d`` bits."""
    if not leaves:
        return EMPTY
    if len(leaves) == 1:
        return leaf_hash(*leaves[0])
    if d >= 256:
        raise ValueError("two keys with one path: a SHA-256 collision")
    s0 = [leaf for leaf in leaves if bit(leaf[0], d) == 0]
    s1 = [leaf for leaf in leaves if bit(leaf[0], d) == 1]
    return node_hash(h(s0, d + 1), h(s1, d + 1))


def root(state: dict[bytes, bytes]) -> bytes:
    """The state root: ``H(all leaves, 0)``."""
    return h(_leaves(state), 0)


def _walk(leaves: list[Leaf], path: bytes, stop: int) -> tuple[list[bytes], list[Leaf], int]:
    """Walk from the root toward ``path`` while more than one leaf is below.

    Returns ``(siblings, leaves left, depth reached)``; the walk also stops at
    depth ``stop``.
    """
    siblings: list[bytes] = []
    d = 0
    while len(leaves) > 1 and d < stop:
        same = [leaf for leaf in leaves if bit(leaf[0], d) == bit(path, d)]
        other = [leaf for leaf in leaves if bit(leaf[0], d) != bit(path, d)]
        siblings.append(h(other, d + 1))  # siblings[d] is the sibling at depth d + 1
        leaves = same
        d += 1
    return siblings, leaves, d


def prove(state: dict[bytes, bytes], key: bytes) -> tuple[list[bytes], bytes | None]:
    """The proof for ``key``: ``(siblings, terminal)``."""
    siblings, left, _ = _walk(_leaves(state), kh(key), 256)
    return siblings, (left[0][0] + left[0][1]) if left else None


def _shares(a: bytes, b: bytes, nbits: int) -> bool:
    return all(bit(a, i) == bit(b, i) for i in range(nbits))


def _fold(path: bytes, node: bytes, siblings: Sequence[bytes]) -> bytes:
    for d in range(len(siblings), 0, -1):
        s = siblings[d - 1]
        node = node_hash(s, node) if bit(path, d - 1) else node_hash(node, s)
    return node


def _well_formed(siblings: Sequence[bytes], terminal: bytes | None, most: int) -> bool:
    if len(siblings) > most or any(len(s) != 32 for s in siblings):
        return False
    return terminal is None or len(terminal) == 64


def verify_proof(
    root_hash: bytes,
    key: bytes,
    value: bytes | None,
    siblings: Sequence[bytes],
    terminal: bytes | None,
) -> bool:
    """Does the proof show ``key -> value`` (``value`` None: ``key`` absent)?"""
    if not _well_formed(siblings, terminal, 255):
        return False
    path = kh(key)
    if terminal is None:
        if value is not None:
            return False  # membership needs the key's own leaf
        node = EMPTY
    else:
        if not _shares(terminal[:32], path, len(siblings)):
            return False
        if value is None and terminal[:32] == path:
            return False  # non-membership, but the terminal is the key itself
        if value is not None and terminal != path + _sha(value):
            return False
        node = leaf_hash(terminal[:32], terminal[32:])
    return _fold(path, node, siblings) == root_hash


def _prefix(depth: int, index: int) -> bytes:
    return (index << (256 - depth)).to_bytes(32, "big")


def chunk(
    state: dict[bytes, bytes], depth: int, index: int
) -> tuple[list[tuple[bytes, bytes]], list[bytes], bytes | None]:
    """Chunk ``index`` of ``2**depth``: ``(entries, siblings, terminal)``."""
    path = _prefix(depth, index)
    entries = sorted(
        ((key, value) for key, value in state.items() if _shares(kh(key), path, depth)),
        key=lambda kv: kh(kv[0]),
    )
    siblings, left, t = _walk(_leaves(state), path, depth)
    if t == depth:
        return entries, siblings, None
    return entries, siblings, (left[0][0] + left[0][1]) if left else None


def verify_chunk(
    root_hash: bytes,
    depth: int,
    index: int,
    entries: Sequence[tuple[bytes, bytes]],
    siblings: Sequence[bytes],
    terminal: bytes | None,
) -> bool:
    """Is ``entries`` exactly the state under prefix ``(depth, index)`` at ``root_hash``?"""
    if not 0 <= depth <= MAX_CHUNK_DEPTH or not 0 <= index < 2**depth:
        return False
    if not _well_formed(siblings, terminal, depth):
        return False
    path = _prefix(depth, index)
    leaves = [(kh(key), _sha(value)) for key, value in entries]
    if not all(_shares(k, path, depth) for k, _ in leaves):
        return False
    if any(leaves[i][0] >= leaves[i + 1][0] for i in range(len(leaves) - 1)):
        return False  # not strictly ascending by kh
    t = len(siblings)
    if t == depth:
        if terminal is not None:
            return False
        node = h(leaves, depth)
    elif terminal is None:
        if leaves:
            return False
        node = EMPTY
    else:
        k, v = terminal[:32], terminal[32:]
        if not _shares(k, path, t):
            return False
        if leaves != ([(k, v)] if _shares(k, path, depth) else []):
            return False
        node = leaf_hash(k, v)
    return _fold(path, node, siblings) == root_hash
