"""Bulk paths of the state tree: commit writes, the upper-tree memo, bulk load, state sync.

* :func:`put_many` -- a commit's writes to one LMDB database with one cursor
  ``putmulti`` (tree records sorted and *appended* when they all sort after the
  stored ones, as in a fresh store), deletes apart.
* :func:`carry_upper` -- the next head's memo of the upper tree levels (see
  :class:`~zapstack.zapdb.view.Snapshot`), so a block's root reads only the
  deepest few levels of each changed path from LMDB.
* :func:`bulk_load` -- many entries into an empty store in one commit: one
  bottom-up build (each node hashed once) whose records come out sorted.
* :class:`ChunkLoader` -- state sync: each verified chunk's subtree, hashed once
  while verifying it, *becomes* the tree's records under that chunk; the levels
  above the chunks are combined from the chunks' subtree hashes (2**depth - 1
  hashes) and the result is checked against the target root, never recomputed.

The bulk build is the C extension's (:mod:`zapstack.zapdb._smtfast`);
without it :func:`bulk_load` and :class:`ChunkLoader` fall back to ordinary txn
writes and :func:`~zapstack.zapdb.proofs.verify_chunk` (same results, slower).
Single-threaded; a loader's txn is the caller's to commit or discard.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from zapstack.errors import LocalProtocolError, StoreError
from zapstack.zapdb import batch, smt
from zapstack.zapdb.batch import build, scan_writes
from zapstack.zapdb.proofs import MAX_CHUNK_DEPTH, StateChunk, verify_chunk, verify_chunk_tree

if TYPE_CHECKING:
    from zapstack.zapdb.store import ZapDB
    from zapstack.zapdb.txn import Txn, Value
    from zapstack.zapdb.view import Snapshot

__all__ = ["ChunkLoader", "bulk_load", "carry_upper", "put_many"]

Nodes = dict[bytes, bytes | None]


def put_many(txn: Any, db: Any, ops: dict[bytes, Any] | list[tuple[bytes, Any]]) -> None:
    """Write ``ops`` (a dict or ``(key, value)`` pairs; None = delete) with one cursor
    ``putmulti``, keys sorted (in C when the extension is built) and appended when every
    key sorts after the last one stored."""
    if not ops:
        return
    has_none, ascending = scan_writes(ops)
    pairs: Any = ops.items() if isinstance(ops, dict) else ops
    if not ascending:
        pairs = batch.sort_writes(dict(pairs)).items()
    puts: Any = pairs  # as they are when sorted without deletes: no copy
    if has_none:
        for key in [k for k, v in pairs if v is None]:
            txn.delete(key, db=db)
        puts = [(k, v) for k, v in pairs if v is not None]
    if not puts:
        return
    cur = txn.cursor(db=db)
    try:
        first = next(iter(puts))[0]
        cur.putmulti(puts, append=not cur.last() or cur.key() < first)
    finally:
        cur.close()


def carry_upper(
    base: Snapshot, nodes: batch.NodeWrites, version: int, *, steal: bool = False
) -> tuple[int, int, batch.Memo, bool] | None:
    """The upper-tree memo for the new head ``version``: ``base``'s with this commit's
    records at depths < split applied, so block after block reads only the deepest
    levels of a changed path from LMDB (a per-key cost that stays flat as the state
    grows).  None (the next head starts cold) after a commit larger than the memo.
    ``steal``: no one but the committing txn holds ``base`` any more, so its memo is
    updated in place rather than copied (a copy costs O(memo) = O(n/8) per block, two memcpys)."""
    if len(nodes) > 4 * len(base.upper) + 4096:
        return None
    split = base.split
    upper = base.upper if steal else base.upper.copy()
    if isinstance(upper, dict):
        pairs = nodes.items() if isinstance(nodes, dict) else nodes
        upper.update((k, v) for k, v in pairs if k[32] < split)
    else:
        upper.absorb(nodes, split)  # the same in C
    return version, split, upper, base.warm


def bulk_load(db: ZapDB, items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Load ``items`` into the empty store ``db`` in one commit; return the state root.

    Raises StoreError if the store is not empty (use a txn to change a state).
    """
    txn = db.begin()
    try:
        if txn.base_root() != smt.EMPTY:
            raise StoreError("bulk_load needs an empty store")
        if not batch.FAST:
            for key, value in items:
                txn.set(key, value)
            return txn.commit()
        with _no_gc():  # millions of new objects, none of them cyclic
            data = _sorted_data(items)
            if data and not (min(map(len, data)) > 0 and max(map(len, data)) <= 511):
                bad = next(len(k) for k in data if not 0 < len(k) <= 511)
                raise LocalProtocolError(f"key length {bad} outside 1..511")
            nodes: Nodes = {smt.ROOT_PATH: None}
            root, record = build(list(data), list(data.values()), nodes)
            nodes[smt.ROOT_PATH] = record
            txn.install(data, nodes, root)
            return txn.commit()
    finally:
        txn.discard()


def _sorted_data(items: Iterable[tuple[bytes, bytes]]) -> dict[bytes, Value | None]:
    """``dict(items)`` (a repeated key takes its last value) with the keys ascending, so
    the commit appends it without sorting it again: one C sort, one dict."""
    pairs = tuple(items)
    try:
        return batch.sorted_entries([pairs])
    except StoreError:  # a repeated key: dict semantics, then sort
        return batch.sort_writes(dict(pairs))


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic collector paused (restored as it was): a bulk path allocates millions
    of acyclic objects, and each full collection would walk all of them."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class ChunkLoader:
    """The ``2**depth`` chunks of ``root`` into ``txn`` (on an empty store), hashing once.

    :meth:`add` verifies one chunk and keeps its entries and its subtree's records;
    :meth:`finish` joins the chunks' subtrees under the root, checks it, and installs
    everything into the txn (which the caller commits).
    """

    def __init__(self, txn: Txn, root: bytes, depth: int) -> None:
        if not 0 <= depth <= MAX_CHUNK_DEPTH:
            raise LocalProtocolError(f"chunk depth {depth} out of range")
        if txn.base_root() != smt.EMPTY:
            raise StoreError("state sync needs an empty store")
        self.root = root
        self.depth = depth
        self._txn = txn
        self._entries: dict[int, tuple[tuple[bytes, bytes], ...]] = {}
        self._tops: dict[int, tuple[bytes, bytes | None]] = {}
        self._nodes: Nodes = {smt.ROOT_PATH: None}
        """The tree records in key order: the root's slot, then chunk after chunk (index
        order) the slots of the joined levels over it and its subtree's records."""
        self._slots: list[bytes] = []
        """Keys of the joined-level slots in ``_nodes``, filled (or dropped) by finish."""
        self._next = 0
        """The chunk index ``_nodes`` takes next; later ones wait in ``_early``."""
        self._early: dict[int, Nodes] = {}

    def add(self, chunk: StateChunk) -> bool:
        """Verify ``chunk`` against the root and keep it; False (nothing kept) if it fails.
        The chunk ``_nodes`` takes next is verified straight into it (no copy); one that
        comes early keeps its records apart until the chunks before it have come."""
        if chunk.depth != self.depth:
            return False
        if chunk.index in self._tops:  # a repeat: checked, nothing more kept
            return verify_chunk(self.root, chunk)
        if not batch.FAST:  # the fallback: verify, then ordinary txn writes
            if not verify_chunk(self.root, chunk):
                return False
            for key, value in chunk.entries:
                self._txn.set(key, value)
            self._tops[chunk.index] = (smt.EMPTY, None)
            return True
        if chunk.index == self._next:
            opened = self._open_slots(chunk.index)
            top = verify_chunk_tree(self.root, chunk, self._nodes, append=True)
            if top is None:
                for _ in range(opened):
                    self._nodes.popitem()
                    self._slots.pop()
                return False
            self._next += 1
            while self._next in self._early:  # the ones that came early, now in order
                self._open_slots(self._next)
                self._nodes.update(self._early.pop(self._next))
                self._next += 1
        else:
            below: Nodes = {}
            top = verify_chunk_tree(self.root, chunk, below)
            if top is None:
                return False
            self._early[chunk.index] = below
        self._tops[chunk.index] = top
        self._entries[chunk.index] = chunk.entries
        return True

    def _open_slots(self, index: int) -> int:
        """Slots in ``_nodes`` for the joined positions whose path is chunk ``index``'s
        prefix (depths where the prefix has no set bit below), shallowest first."""
        low = (index & -index).bit_length() - 1 if index else self.depth
        prefix = index << (256 - self.depth)
        opened = 0
        for depth in range(max(1, self.depth - low), self.depth + 1):
            key = smt.path_key(prefix, depth)
            self._nodes[key] = None
            self._slots.append(key)
            opened += 1
        return opened

    def finish(self) -> bytes:
        """Join the chunks, check the root, install into the txn; return the root."""
        if len(self._tops) != 1 << self.depth:
            raise LocalProtocolError("state sync finished before every chunk was added")
        if not batch.FAST:
            if self._txn.root() != self.root:  # unreachable with verified chunks: a bug
                raise LocalProtocolError("verified chunks do not rebuild the target root")
            return self.root
        level = [self._tops[i] for i in range(1 << self.depth)]
        joins: Nodes = {}
        for depth in range(self.depth, 0, -1):
            level = [
                _join(joins, depth, i, level[2 * i], level[2 * i + 1])
                for i in range(len(level) // 2)
            ]
        root, record = level[0]
        if root != self.root:  # unreachable with verified chunks: a bug
            raise LocalProtocolError("verified chunks do not rebuild the target root")
        nodes = self._nodes
        nodes[smt.ROOT_PATH] = record
        for key in self._slots:  # a slot left empty (or whose leaf moved up) goes
            if key in joins:
                nodes[key] = joins.pop(key)
            else:
                del nodes[key]
        if joins:  # unreachable: every joined position has a slot
            raise LocalProtocolError("a joined record has no slot")
        data = batch.sorted_entries([self._entries[i] for i in range(1 << self.depth)])
        self._txn.install(data, nodes, root)
        return root


def _join(
    nodes: Nodes,
    depth: int,
    index: int,
    left: tuple[bytes, bytes | None],
    right: tuple[bytes, bytes | None],
) -> tuple[bytes, bytes | None]:
    """The content of the depth-1 position over chunks-level children ``2i`` and ``2i+1``:
    a lone leaf moves up (its record is placed by the caller), else both children's
    records are placed at depth ``depth``."""
    (lh, lrec), (rh, rrec) = left, right
    if lrec is None and rrec is None:
        return smt.EMPTY, None
    if lrec is None and rrec is not None and rrec[0] == smt.LEAF_TAG:
        return rh, rrec
    if rrec is None and lrec is not None and lrec[0] == smt.LEAF_TAG:
        return lh, lrec
    shift = 256 - depth
    for side, rec in ((0, lrec), (1, rrec)):
        if rec is not None:
            nodes[smt.path_key((2 * index + side) << shift, depth)] = rec
    return smt.node_hash(lh, rh), b"\x01" + lh + rh
