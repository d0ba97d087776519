"""The state tree's fast path: the C merge (:mod:`zapstack.zapdb._smtfast`) over a txn.

:func:`apply_batch` / :func:`merge_lists` apply a batch of changes in one pass of
the C extension (sorted by key hash; each touched record read once, each changed
node hashed once); :func:`build` is the same from nothing (bulk load, state-sync
chunks).  :class:`NodeOverlay` is a txn's view of the tree: its own writes over
the snapshot, with base reads memoised in two C tables (:data:`Memo`) -- the
snapshot's shared ``upper`` levels and the txn's own ``cache`` -- which the C merge
probes directly (:class:`Layers`), reading LMDB only on a miss.  ``FAST`` is False when
the extension is not built; callers then use :func:`.smt.apply_updates_py`, which
tests hold equal.  Same threading rules as the txn that owns the overlay.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeAlias, runtime_checkable

from zapstack.errors import StoreError
from zapstack.zapdb.smt import EMPTY, ROOT_PATH, NodeStore

if TYPE_CHECKING:
    from zapstack.zapdb.view import Snapshot

try:
    from zapstack.zapdb import _smtfast
except ImportError:  # pragma: no cover - the extension is optional
    _smtfast = None  # type: ignore[assignment]

__all__ = [
    "FAST",
    "BulkNodeStore",
    "Layers",
    "Memo",
    "NodeOverlay",
    "NodeWrites",
    "apply_batch",
    "build",
    "merge_lists",
    "new_memo",
    "node_writes",
    "pending_lists",
    "scan_writes",
    "sort_writes",
    "sorted_entries",
]

FAST = _smtfast is not None
"""Whether the C extension is built."""
_ROOT_PATH = ROOT_PATH

Memo: TypeAlias = "dict[bytes, bytes | None] | _smtfast.NodeTable"
"""A memo of tree records (node-store key -> record | None): a C ``NodeTable`` when the
extension is built (the merge probes it without a bytes object or a dict), else a dict."""


def new_memo() -> Memo:
    """An empty :data:`Memo`."""
    return {} if _smtfast is None else _smtfast.NodeTable()


class Layers(NamedTuple):
    """How a :class:`BulkNodeStore` resolves a read, for the C merge to do it itself."""

    reader: Callable[[], AbstractContextManager[Callable[[bytes], bytes | None]]]
    """Yields the base read (LMDB) for one merge, called only when no dict has the path."""
    tree: Memo
    """The merges' writes (None = deleted): read first; the merge adds its writes here."""
    upper: Memo
    """Memo of base reads at depths < ``split``."""
    lower: Memo
    """Memo of the deeper base reads."""
    split: int
    """Depth bound of ``upper``."""


@runtime_checkable
class BulkNodeStore(Protocol):
    """A :class:`NodeStore` whose reads and writes are dicts over a base read (the txn overlay)."""

    def get_node(self, path: bytes) -> bytes | None: ...

    def put_node(self, path: bytes, record: bytes | None) -> None: ...

    def layers(self) -> Layers:
        """Its dicts and base read."""
        ...


def apply_batch(
    store: NodeStore, updates: Iterable[tuple[bytes, bytes | memoryview | None]]
) -> bytes:
    """:func:`apply_updates` in one pass of the C extension (raises if it is absent)."""
    keys: list[bytes] = []
    values: list[bytes | memoryview | None] = []
    for key, value in updates:
        keys.append(key)
        values.append(value)
    return merge_lists(store, keys, values)


def pending_lists(
    pending: set[bytes],
    writes: dict[bytes, Any],
    base_get: Callable[[bytes], Any],
    shuffle: Callable[[list[bytes]], None] | None = None,
) -> tuple[list[bytes], list[Any]]:
    """A txn's keys to merge and their values: each pending key's write, or the base's
    value (``base_get``) where the write was rolled back.  ``shuffle`` reorders the keys
    (sorted first; a test's write-order seed).  When every write is pending (a first
    flush) the dict is read in its own order, not by a lookup per key in the set's order
    (a cache miss each at 100k keys)."""
    if shuffle is None and pending == writes.keys():
        return list(writes), list(writes.values())
    keys = list(pending)
    if shuffle is not None:
        keys.sort()
        shuffle(keys)
    values = list(map(writes.get, keys))
    gone = pending.difference(writes)  # rolled back to the snapshot's value
    if gone:
        for i, key in enumerate(keys):
            if key in gone:
                values[i] = base_get(key)
    return keys, values


def merge_lists(
    store: NodeStore, keys: list[bytes], values: list[bytes | memoryview | None]
) -> bytes:
    """:func:`apply_batch` given ``keys[i] -> values[i]`` as two lists (no tuples)."""
    if _smtfast is None:  # pragma: no cover
        raise StoreError("the zapstack.zapdb._smtfast extension is not built")
    try:
        if isinstance(store, BulkNodeStore):
            lay = store.layers()
            tree, upper, lower = lay.tree, lay.upper, lay.lower
            if isinstance(tree, dict) or isinstance(upper, dict) or isinstance(lower, dict):
                raise StoreError("the C merge needs NodeTables (batch.new_memo)")
            with lay.reader() as get:  # writes and the root's record go into `tree`
                root, _, _ = _smtfast.merge(
                    get, keys, values, into=tree, upper=upper, lower=lower, split=lay.split
                )
            return bytes(root)
        root, record, writes = _smtfast.merge(store.get_node, keys, values)
    except OverflowError as exc:
        raise StoreError(str(exc)) from None
    for path, rec in writes:
        store.put_node(path, rec)
    store.put_node(_ROOT_PATH, record)
    return bytes(root)


def build(
    keys: list[bytes],
    values: list[bytes | memoryview | None],
    into: dict[bytes, bytes | None],
    depth: int = 0,
    prefix: bytes = EMPTY,
) -> tuple[bytes, bytes | None]:
    """Bottom-up build of the subtree at ``(depth, prefix)`` from nothing (C extension).

    Its records strictly below that position go into ``into`` (sorted); returns the
    subtree's hash and the record for its own position (None if it is empty).
    """
    if _smtfast is None:
        raise StoreError("the zapstack.zapdb._smtfast extension is not built")
    try:
        root, record, _ = _smtfast.merge(None, keys, values, depth, prefix, into=into)
    except OverflowError as exc:
        raise StoreError(str(exc)) from None
    return bytes(root), record


def scan_writes(writes: Mapping[bytes, object] | list[tuple[bytes, Any]]) -> tuple[bool, bool]:
    """(any value is None, keys strictly ascending in iteration order) of a write dict or
    a list of ``(key, value)`` pairs."""
    if _smtfast is not None and isinstance(writes, dict | list):
        return _smtfast.scan(writes)
    pairs = list(writes.items()) if isinstance(writes, Mapping) else writes
    has_none = any(v is None for _, v in pairs)
    return has_none, all(a[0] < b[0] for a, b in itertools.pairwise(pairs))


def sorted_entries(groups: list[tuple[tuple[bytes, Any], ...]]) -> dict[bytes, Any]:
    """Every ``(key, value)`` of ``groups`` in one dict, keys ascending (StoreError if a
    key is repeated)."""
    if _smtfast is not None:
        try:
            return _smtfast.sorted_entries(groups)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
    flat = sorted(e for group in groups for e in group)
    out = dict(flat)
    if len(out) != len(flat):
        raise StoreError("sorted_entries: a key is repeated")
    return out


def sort_writes(writes: dict[bytes, Any]) -> dict[bytes, Any]:
    """The same items in a new dict, keys ascending (a C sort when the extension is built)."""
    if _smtfast is not None:
        return _smtfast.sorted_items(writes)
    return dict(sorted(writes.items()))


NodeWrites: TypeAlias = "Mapping[bytes, bytes | None] | list[tuple[bytes, bytes | None]]"
"""A commit's tree records (None = delete): a mapping, or ``(key, record)`` pairs."""


def node_writes(tree: Memo) -> NodeWrites:
    """A txn's tree records for its commit, keys ascending (in C, as a list of pairs, for
    a ``NodeTable``: no dict to hash 33-byte keys into)."""
    if isinstance(tree, dict):
        return dict(sorted(tree.items()))
    return tree.merged({})


class NodeOverlay:
    """NodeStore: the txn's changed tree nodes over the snapshot's.

    Its writes go to ``tree`` (a C table the merge fills without a bytes object per
    node), read before the snapshot.  Base reads are memoised (the snapshot is
    immutable, so the memo never goes stale): the upper levels in the snapshot's shared
    ``upper`` (carried from commit to commit by the store), the rest in this txn's
    ``cache``.
    """

    __slots__ = ("base", "cache", "tree")

    def __init__(self, tree: Memo, cache: Memo, base: Snapshot) -> None:
        self.tree = tree
        self.cache = cache
        self.base = base

    def get_node(self, path: bytes) -> bytes | None:
        if path in self.tree:
            return self.tree[path]
        memo = self.base.upper if path[32] < self.base.split else self.cache
        if path in memo:
            return memo[path]
        rec = memo[path] = self.base.get_node(path)
        return rec

    def put_node(self, path: bytes, record: bytes | None) -> None:
        self.tree[path] = record

    def layers(self) -> Layers:
        base = self.base
        return Layers(base.node_reader, self.tree, base.upper, self.cache, base.split)
