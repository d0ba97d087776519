"""The state root: a compact sparse Merkle tree over sha256(key).

``docs/formats/state-root.md`` is the normative definition; this module is its
reference implementation.  In one paragraph: every entry ``(key, value)`` is a
leaf at the 256-bit path ``kh = sha256(key)`` (bit 0 = most significant bit of
byte 0) with ``vh = sha256(value)``.  For the set ``S`` of leaves whose paths
share a ``d``-bit prefix::

    H(S, d) = EMPTY                              if |S| == 0   (32 zero bytes)
            = sha256(0x00 || kh || vh)           if |S| == 1   (the leaf hash)
            = sha256(0x01 || H(S0, d+1) || H(S1, d+1))   otherwise

where ``S0``/``S1`` are the leaves whose bit ``d`` is 0/1.  The state root is
``H(all entries, 0)``: a function of the logical key/value set only.

Two implementations that tests keep equal:

* :func:`reference_root` / :func:`subtree_hash` -- the readable recursive
  definition over a dict (O(n log n), used for checking and chunk proofs);
* :func:`apply_updates` -- the incremental form over a persistent node store
  (:class:`NodeStore`): a batch of changed keys costs O(changed x depth) node
  reads/writes, depth ~ log2(n) because a lone leaf sits at the shallowest
  level where it is alone.  Proofs and chunks (:mod:`zapstack.zapdb.proofs`) are
  served from the same node store.

A third, :func:`zapstack.zapdb.batch.apply_batch`, is the same merge done by the optional C
extension :mod:`zapstack.zapdb._smtfast` (built at ``pip install``): it sorts the
batch by key hash and walks the tree once, reading each touched record once and
hashing each changed node once; with an empty base it is a bottom-up bulk build.
:func:`apply_updates` uses it when it is importable (``FAST``) and falls back to
the pure-Python walk otherwise; tests hold all three equal.

Node store layout v2 (see ``docs/formats/zapdb.md``): the node at depth ``d`` on
path ``p`` lives under the 33-byte key ``p_masked || bytes([d])`` (``p`` with
bits ``d..255`` cleared), so the keys sort in pre-order: a subtree's records are
one contiguous key range, the node itself first (:func:`subtree_range`).  A
record is ``0x01 || left hash || right hash`` for an interior node (>= 2 leaves
below it) or ``0x00 || kh || vh || key`` for a leaf; either's hash is ``sha256``
of its first 65 bytes (the key is kept so chunks can be served).  An absent
record is an empty subtree.  A walk down one path reads only that path's records:
the siblings' hashes are in their parents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from zapstack.errors import StoreError

try:
    from zapstack.zapdb import _smtfast

    FAST = True
except ImportError:  # pragma: no cover - the extension is optional
    FAST = False
if FAST and getattr(_smtfast, "LAYOUT", 1) != 2:  # pragma: no cover - a stale build
    raise ImportError(
        "zapstack.zapdb._smtfast was built for node-store layout v1: rebuild it "
        "(pip install -e . or make install)"
    )

__all__ = [
    "EMPTY",
    "FAST",
    "ROOT_PATH",
    "NodeStore",
    "apply_updates",
    "apply_updates_py",
    "bit",
    "child_hash",
    "key_hash",
    "leaf_hash",
    "leaf_record",
    "node_hash",
    "path_key",
    "reference_root",
    "root_of_store",
    "subtree_hash",
    "subtree_range",
]

EMPTY = bytes(32)
"""Hash of an empty subtree (and the root of the empty state)."""

LEAF_TAG = 0x00
NODE_TAG = 0x01
_PENDING = b"\x01" + EMPTY + EMPTY  # a freshly created interior node awaiting rehash
ROOT_PATH = bytes(33)
"""Node-store key of the root node."""
_ROOT_PATH = ROOT_PATH
_sha256 = hashlib.sha256


class NodeStore(Protocol):
    """Where :func:`apply_updates` keeps tree nodes (an overlay over LMDB, or a dict)."""

    def get_node(self, path: bytes) -> bytes | None:
        """The record at ``path`` or None for an empty subtree."""
        ...

    def put_node(self, path: bytes, record: bytes | None) -> None:
        """Store ``record`` at ``path`` (None deletes it)."""
        ...


def key_hash(key: bytes) -> bytes:
    """The 256-bit tree path of ``key``: sha256(key)."""
    return _sha256(key).digest()


def leaf_hash(kh: bytes, vh: bytes) -> bytes:
    """sha256(0x00 || kh || vh)."""
    return _sha256(b"\x00" + kh + vh).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """sha256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def leaf_record(kh: bytes, vh: bytes, key: bytes) -> bytes:
    """The stored form of a leaf: 0x00 || kh || vh || key."""
    return b"\x00" + kh + vh + key


def bit(kh: bytes, i: int) -> int:
    """Bit ``i`` of a 256-bit path, 0 = most significant bit of byte 0."""
    return (kh[i >> 3] >> (7 - (i & 7))) & 1


_MASKS = [((1 << d) - 1) << (256 - d) for d in range(256)]
_DEPTH = [bytes((d,)) for d in range(256)]


def path_key(kint: int, depth: int) -> bytes:
    """Node-store key of the depth-``depth`` node on the path ``kint`` (a 256-bit int)."""
    return (kint & _MASKS[depth]).to_bytes(32, "big") + _DEPTH[depth]


def subtree_range(depth: int, prefix: int) -> tuple[bytes, bytes]:
    """``[lo, hi)``: the node-store keys of every record in the subtree at ``(depth,
    prefix)`` (``prefix`` a 256-bit int with bits ``depth..255`` clear), its own first."""
    hi = prefix + (1 << (256 - depth))
    end = hi.to_bytes(32, "big") + _DEPTH[0] if not hi >> 256 else b"\xff" * 34
    return prefix.to_bytes(32, "big") + _DEPTH[depth], end


def child_hash(record: bytes | None) -> bytes:
    """The hash a parent uses for a child given its stored record: sha256 of its first 65
    bytes (``0x00 || kh || vh`` of a leaf, ``0x01 || left || right`` of an interior node)."""
    if record is None:
        return EMPTY
    return _sha256(record[:65]).digest()


# --------------------------------------------------------------------------- reference


def subtree_hash(leaves: Sequence[tuple[bytes, bytes]], depth: int) -> bytes:
    """``H(S, depth)`` for ``leaves`` = [(kh, vh), ...] all sharing a ``depth``-bit prefix."""
    if not leaves:
        return EMPTY
    if len(leaves) == 1:
        kh, vh = leaves[0]
        return leaf_hash(kh, vh)
    if depth >= 255:
        raise StoreError("sha256 key-hash collision in the state tree")
    zero = [lf for lf in leaves if not bit(lf[0], depth)]
    one = [lf for lf in leaves if bit(lf[0], depth)]
    return node_hash(subtree_hash(zero, depth + 1), subtree_hash(one, depth + 1))


def reference_root(state: Mapping[bytes, bytes]) -> bytes:
    """The state root recomputed from scratch over a dict (readable definition)."""
    leaves = [(key_hash(k), _sha256(v).digest()) for k, v in state.items()]
    return subtree_hash(leaves, 0)


# --------------------------------------------------------------------------- incremental


def _insert(store: NodeStore, kh: bytes, vh: bytes, key: bytes, dirty: set[bytes]) -> None:
    kint = int.from_bytes(kh, "big")
    leaf = leaf_record(kh, vh, key)
    depth = 0
    walked: list[bytes] = []
    while True:
        path = path_key(kint, depth)
        walked.append(path)
        rec = store.get_node(path)
        if rec is None:
            store.put_node(path, leaf)
            break
        if rec[0] == LEAF_TAG:
            other = rec[1:33]
            if other == kh:
                if rec[33:65] == vh:
                    return  # unchanged value: nothing to do
                store.put_node(path, leaf)
                break
            oint = int.from_bytes(other, "big")
            split = 256 - (kint ^ oint).bit_length()  # first differing bit
            if split >= 255:
                raise StoreError("sha256 key-hash collision in the state tree")
            store.put_node(path, _PENDING)
            for d in range(depth + 1, split + 1):
                walked.append(path_key(kint, d))
                store.put_node(walked[-1], _PENDING)
            store.put_node(path_key(oint, split + 1), rec)
            store.put_node(path_key(kint, split + 1), leaf)
            dirty.update(walked)
            return
        depth += 1
    dirty.update(walked[:depth])


def _delete(store: NodeStore, kh: bytes, dirty: set[bytes]) -> None:
    kint = int.from_bytes(kh, "big")
    depth = 0
    walked: list[bytes] = []
    while True:
        path = path_key(kint, depth)
        walked.append(path)
        rec = store.get_node(path)
        if rec is None:
            return  # absent: nothing to delete
        if rec[0] == LEAF_TAG:
            if rec[1:33] != kh:
                return
            break
        depth += 1
    store.put_node(path, None)
    # Collapse: a parent left with exactly one leaf becomes that leaf.
    while depth > 0:
        here_path = walked[depth]
        sib_path = path_key(kint ^ (1 << (256 - depth)), depth)
        here = store.get_node(here_path)
        sib = store.get_node(sib_path)
        if here is None and sib is not None and sib[0] == LEAF_TAG:
            lone_path, lone = sib_path, sib
        elif sib is None and here is not None and here[0] == LEAF_TAG:
            lone_path, lone = here_path, here
        else:
            break
        store.put_node(lone_path, None)
        store.put_node(walked[depth - 1], lone)
        depth -= 1
    dirty.update(walked[:depth])


def _rehash(store: NodeStore, dirty: set[bytes]) -> None:
    for path in sorted(dirty, key=lambda p: -p[32]):  # deepest first
        rec = store.get_node(path)
        if rec is None or rec[0] != NODE_TAG:
            continue  # collapsed into a leaf or removed by a later update
        depth = path[32]
        prefix = int.from_bytes(path[:32], "big")
        left = store.get_node(path[:32] + bytes((depth + 1,)))
        right_path = (prefix | (1 << (255 - depth))).to_bytes(32, "big") + bytes((depth + 1,))
        right = store.get_node(right_path)
        store.put_node(path, b"\x01" + child_hash(left) + child_hash(right))


def apply_updates(
    store: NodeStore, updates: Iterable[tuple[bytes, bytes | memoryview | None]]
) -> bytes:
    """Apply ``(key, value_or_None)`` changes to the tree in ``store``; return the new root.

    ``value`` None deletes the key; a key given twice takes its last value.  The
    result depends only on the final key set, never on the order of ``updates``.
    Cost: O(len(updates) x depth).  Uses :func:`.batch.apply_batch` when :data:`FAST`.
    """
    if FAST:
        from zapstack.zapdb.batch import apply_batch

        return apply_batch(store, updates)
    return apply_updates_py(store, updates)


def apply_updates_py(
    store: NodeStore, updates: Iterable[tuple[bytes, bytes | memoryview | None]]
) -> bytes:
    """:func:`apply_updates` key by key in pure Python (the fallback; tests keep it equal)."""
    dirty: set[bytes] = set()
    for key, value in updates:
        kh = key_hash(key)
        if value is None:
            _delete(store, kh, dirty)
        else:
            _insert(store, kh, _sha256(value).digest(), key, dirty)
    _rehash(store, dirty)
    return root_of_store(store)


def root_of_store(store: NodeStore) -> bytes:
    """The root hash of the tree held in ``store``."""
    return child_hash(store.get_node(_ROOT_PATH))


class DictNodeStore:
    """An in-memory :class:`NodeStore` (tests, the vector model)."""

    __slots__ = ("nodes",)

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def get_node(self, path: bytes) -> bytes | None:
        return self.nodes.get(path)

    def put_node(self, path: bytes, record: bytes | None) -> None:
        if record is None:
            self.nodes.pop(path, None)
        else:
            self.nodes[path] = record
