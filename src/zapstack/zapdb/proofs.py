"""Membership / non-membership proofs and verifiable state chunks.

Both are read from a :class:`~zapstack.zapdb.smt.NodeStore` at one committed
(or speculative) version and checked against nothing but a 32-byte state root
(``docs/formats/state-root.md`` §Proofs and §Chunks).

* :class:`Proof` -- the sibling hashes on the path of ``sha256(key)`` from the
  root down to where the walk stopped, plus the terminal: the leaf found there
  (``kh || vh``) or nothing (an empty subtree).  It proves membership when the
  terminal is the key's own leaf, non-membership when the terminal is empty or
  another key's leaf.
* :class:`StateChunk` -- every entry whose key hash starts with a ``depth``-bit
  prefix (chunk ``index`` of ``2**depth``), plus the siblings that connect that
  subtree to the root.  A bootstrapping node verifies each chunk on its own; the
  ``2**depth`` chunks of one root together hold the whole state exactly once.

Verification functions never raise on bad input: they return False.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from zapstack.errors import LocalProtocolError, WireCode

try:
    from zapstack.zapdb import _smtfast
except ImportError:  # pragma: no cover - the extension is optional
    _smtfast = None  # type: ignore[assignment]
from zapstack.zapdb.smt import (
    EMPTY,
    LEAF_TAG,
    NodeStore,
    bit,
    key_hash,
    leaf_hash,
    node_hash,
    path_key,
    subtree_hash,
)

__all__ = [
    "ENTRY_OVERHEAD",
    "MAX_CHUNK_DEPTH",
    "RECORD_FIXED",
    "ChunkTooLarge",
    "Proof",
    "StateChunk",
    "body_len",
    "make_chunk",
    "prove",
    "verify_chunk",
    "verify_proof",
]

MAX_CHUNK_DEPTH = 24
"""Chunks split the key-hash space into at most 2**24 prefixes."""

RECORD_FIXED = 10
"""Bytes of a chunk record's body besides its entries, siblings and terminal (``kh || vh``,
64 bytes): index u32, entry_count u32, sibling_count u8, terminal flag u8 (``bootstrap.md`` §2)."""

ENTRY_OVERHEAD = 6
"""Bytes of one entry's encoding besides its key and value: key_len u16, value_len u32."""

Lookup = Callable[[bytes], bytes | None]


class ChunkTooLarge(LocalProtocolError):
    """Chunk ``index`` of ``2**depth`` needs a record body of more than ``limit`` bytes
    (:func:`make_chunk` with a limit; it read about ``limit`` bytes of the chunk at most)."""

    def __init__(self, depth: int, index: int, limit: int) -> None:
        super().__init__(
            f"state chunk {index} of depth {depth} needs a record body of more than {limit} bytes",
            code=WireCode.INTERNAL,
        )
        self.depth = depth
        self.index = index
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Proof:
    """Authentication path for one key against a state root."""

    siblings: tuple[bytes, ...]
    """Sibling hashes, top-down: ``siblings[i]`` is the sibling at depth ``i + 1``."""
    terminal: bytes | None
    """``kh || vh`` (64 bytes) of the leaf where the walk stopped, or None if empty."""


@dataclass(frozen=True, slots=True)
class StateChunk:
    """All entries under one key-hash prefix, verifiable against the root alone."""

    depth: int
    """Prefix length in bits (0..MAX_CHUNK_DEPTH)."""
    index: int
    """The prefix as an integer, 0 <= index < 2**depth."""
    entries: tuple[tuple[bytes, bytes], ...]
    """(key, value) pairs, sorted by sha256(key)."""
    siblings: tuple[bytes, ...]
    """Sibling hashes top-down from depth 1 to ``len(siblings)`` (<= depth)."""
    terminal: bytes | None
    """When ``len(siblings) < depth``: the lone leaf (``kh || vh``) or None that the
    walk toward the prefix stopped at.  Unused (None) when ``len(siblings) == depth``."""


@runtime_checkable
class LeafScanner(Protocol):
    """A node store that lists a subtree's leaves itself (the LMDB snapshot: range scans)."""

    def entries_under(
        self, depth: int, prefix: int, budget: int | None = None, per_entry: int = 0
    ) -> tuple[tuple[bytes, bytes], ...] | None:
        """``(key, value)`` of every leaf below ``(depth, prefix)`` (a 256-bit int), sorted
        by key hash, read at the store's own version; None once the entries'
        ``per_entry + len(key) + len(value)`` add up to more than ``budget``."""
        ...


def _fold(kh: bytes, node: bytes, siblings: tuple[bytes, ...]) -> bytes:
    """Hash ``node`` (at depth ``len(siblings)`` on path ``kh``) up to the root."""
    if _smtfast is not None and type(siblings) is tuple:
        return _smtfast.fold(kh, node, siblings)
    return _fold_py(kh, node, siblings)


def _fold_py(kh: bytes, node: bytes, siblings: tuple[bytes, ...]) -> bytes:
    """:func:`_fold` in plain Python (the reference; tests hold them equal)."""
    for depth in range(len(siblings), 0, -1):
        sib = siblings[depth - 1]
        node = node_hash(sib, node) if bit(kh, depth - 1) else node_hash(node, sib)
    return node


def _shares_prefix(a: bytes, b: bytes, nbits: int) -> bool:
    shift = 256 - nbits
    return int.from_bytes(a, "big") >> shift == int.from_bytes(b, "big") >> shift


def prove(store: NodeStore, key: bytes) -> Proof:
    """The (non-)membership proof for ``key`` in the tree held by ``store``."""
    kh = key_hash(key)
    kint = int.from_bytes(kh, "big")
    siblings: list[bytes] = []
    depth = 0
    while True:
        rec = store.get_node(path_key(kint, depth))
        if rec is None:
            return Proof(tuple(siblings), None)
        if rec[0] == LEAF_TAG:
            return Proof(tuple(siblings), bytes(rec[1:65]))
        siblings.append(_other_child(rec, (kint >> (255 - depth)) & 1))
        depth += 1


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """True iff ``proof`` shows ``key -> value`` (or, if ``value`` is None, key absent)."""
    kh = key_hash(key)
    if len(proof.siblings) > 255 or any(len(s) != 32 for s in proof.siblings):
        return False
    term = proof.terminal
    if term is None:
        if value is not None:
            return False
        node = EMPTY
    else:
        if len(term) != 64 or not _shares_prefix(term[:32], kh, len(proof.siblings)):
            return False
        if value is None:
            if term[:32] == kh:
                return False
        elif term[:32] != kh or term[32:] != hashlib.sha256(value).digest():
            return False
        node = leaf_hash(term[:32], term[32:])
    return _fold(kh, node, proof.siblings) == root


def _collect(store: NodeStore, path: bytes, out: list[bytes]) -> None:
    rec = store.get_node(path)
    if rec is None:
        return
    if rec[0] == LEAF_TAG:
        out.append(rec)
        return
    depth = path[32]
    prefix = int.from_bytes(path[:32], "big")
    _collect(store, path[:32] + bytes((depth + 1,)), out)
    right = (prefix | (1 << (255 - depth))).to_bytes(32, "big")
    _collect(store, right + bytes((depth + 1,)), out)


def body_len(chunk: StateChunk) -> int:
    """Bytes of ``chunk``'s record body as ``bootstrap.md`` §2 encodes it (the record adds
    its u32 ``body_len``)."""
    entries = sum(ENTRY_OVERHEAD + len(k) + len(v) for k, v in chunk.entries)
    tail = 32 * len(chunk.siblings) + (0 if chunk.terminal is None else len(chunk.terminal))
    return RECORD_FIXED + entries + tail


def make_chunk(
    store: NodeStore, lookup: Lookup, depth: int, index: int, *, limit: int | None = None
) -> StateChunk:
    """Chunk ``index`` of ``2**depth``; ``lookup`` reads a value at the same version.

    With ``limit``, :class:`ChunkTooLarge` if the chunk's :func:`body_len` would pass it;
    from a :class:`LeafScanner` (the LMDB snapshot) it finds that out having read about
    ``limit`` bytes of entries, not the whole subtree."""
    if not 0 <= depth <= MAX_CHUNK_DEPTH or not 0 <= index < (1 << depth):
        raise LocalProtocolError(f"chunk {index} of depth {depth} out of range")
    pint = index << (256 - depth)
    reader = getattr(store, "node_reader", None)  # the snapshot: LMDB's get, one lock hold
    if reader is not None:
        with reader() as get:
            siblings, stop = _walk_fast(get, depth, pint)
    else:
        siblings, stop = _walk(store.get_node, depth, pint)
    if stop is not None:
        rec = stop[0]
        term = None if rec is None else bytes(rec[1:65])
        entries: tuple[tuple[bytes, bytes], ...] = ()
        if rec is not None and _shares_prefix(rec[1:33], pint.to_bytes(32, "big"), depth):
            entries = (_entry(rec, lookup),)
        return _within(StateChunk(depth, index, entries, siblings, term), limit)
    scan = getattr(store, "entries_under", None)  # a LeafScanner (cheaper than isinstance)
    if scan is not None:
        budget = None if limit is None else limit - RECORD_FIXED - 32 * len(siblings)
        found = None
        if budget is None or budget >= 0:
            found = scan(depth, pint, budget, ENTRY_OVERHEAD)
        if found is None:
            raise ChunkTooLarge(depth, index, limit or 0)
        return StateChunk(depth, index, found, siblings, None)
    leaves: list[bytes] = []
    _collect(store, path_key(pint, depth), leaves)
    leaves.sort(key=lambda r: r[1:33])
    chunk = StateChunk(depth, index, tuple(_entry(r, lookup) for r in leaves), siblings, None)
    return _within(chunk, limit)


def _within(chunk: StateChunk, limit: int | None) -> StateChunk:
    if limit is not None and body_len(chunk) > limit:
        raise ChunkTooLarge(chunk.depth, chunk.index, limit)
    return chunk


def _walk_fast(
    get: Lookup, depth: int, pint: int
) -> tuple[tuple[bytes, ...], tuple[bytes | None] | None]:
    """:func:`_walk` in C when it is built (the same result; a record it finds corrupt, or
    a ``get`` answering other than bytes, goes the readable way)."""
    if _smtfast is not None:
        try:
            return _smtfast.walk(get, depth, pint.to_bytes(32, "big"))
        except (TypeError, ValueError):
            pass
    return _walk(get, depth, pint)


def _walk(
    get: Lookup, depth: int, pint: int
) -> tuple[tuple[bytes, ...], tuple[bytes | None] | None]:
    """Siblings from the root toward the chunk at ``(depth, pint)``, and ``(record,)`` of
    the empty subtree or lone leaf the walk stopped at above ``depth`` (None if it got there)."""
    siblings: list[bytes] = []
    for d in range(depth):
        rec = get(path_key(pint, d))
        if rec is None or rec[0] == LEAF_TAG:
            return tuple(siblings), (rec,)
        siblings.append(_other_child(rec, (pint >> (255 - d)) & 1))
    return tuple(siblings), None


def _other_child(rec: bytes, side: int) -> bytes:
    """The hash of the child of interior record ``rec`` that is not on ``side`` (0 = left):
    the record is ``0x01 || left || right``."""
    return bytes(rec[1:33]) if side else bytes(rec[33:65])


def _entry(rec: bytes, lookup: Lookup) -> tuple[bytes, bytes]:
    key = bytes(rec[65:])
    value = lookup(key)
    if value is None:
        raise LocalProtocolError("chunk lookup does not match the node store's version")
    return key, bytes(value)


def verify_chunk(root: bytes, chunk: StateChunk) -> bool:
    """True iff ``chunk`` is exactly the set of entries under its prefix at ``root``."""
    depth, index = chunk.depth, chunk.index
    if not 0 <= depth <= MAX_CHUNK_DEPTH or not 0 <= index < (1 << depth):
        return False
    if len(chunk.siblings) > depth or any(len(s) != 32 for s in chunk.siblings):
        return False
    prefix = (index << (256 - depth)).to_bytes(32, "big")
    leaves = [(key_hash(k), hashlib.sha256(v).digest()) for k, v in chunk.entries]
    if any(not _shares_prefix(kh, prefix, depth) for kh, _ in leaves):
        return False
    if [kh for kh, _ in leaves] != sorted({kh for kh, _ in leaves}):
        return False  # unsorted or duplicated
    stop = len(chunk.siblings)
    if stop == depth:
        if chunk.terminal is not None:
            return False
        node = subtree_hash(leaves, depth)
    else:
        term = chunk.terminal
        if term is None:
            if leaves:
                return False
            node = EMPTY
        else:
            if len(term) != 64 or not _shares_prefix(term[:32], prefix, stop):
                return False
            inside = _shares_prefix(term[:32], prefix, depth)
            if leaves != ([(term[:32], term[32:])] if inside else []):
                return False
            node = leaf_hash(term[:32], term[32:])
    return _fold(prefix, node, chunk.siblings) == root
