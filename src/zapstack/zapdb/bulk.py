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
  With the C extension the records never become Python objects until LMDB takes
  them: :class:`Presorted` hands them to :func:`put_many` in key order.  Tree records
  go into the commit's LMDB txn as they become final, entries once more than
  :data:`SPILL_BYTES` of them wait (sorted batches): what it holds does not grow with the
  state (the fallback's txn writes do).

The bulk build is the C extension's (:mod:`zapstack.zapdb._smtfast`, the state-sync
half in ``_smtfast_sync.h``); without it :func:`bulk_load` and :class:`ChunkLoader`
fall back to ordinary txn writes and :func:`~zapstack.zapdb.proofs.verify_chunk`
(same results, slower).  Called from one thread (``ChunkLoader.add_many`` hashes on a
helper thread inside the call), the thread that commits or discards the loader's txn:
the records that settle are written into the LMDB txn that commit finishes (:mod:`.early`).
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from zapstack.errors import LocalProtocolError, StoreError
from zapstack.zapdb import batch, lmdbfast, smt
from zapstack.zapdb.batch import build, scan_writes
from zapstack.zapdb.proofs import MAX_CHUNK_DEPTH, StateChunk, verify_chunk

try:
    from zapstack.zapdb import _smtfast
except ImportError:  # pragma: no cover - the extension is optional
    _smtfast = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from zapstack.zapdb.store import ZapDB
    from zapstack.zapdb.txn import Txn, Value
    from zapstack.zapdb.view import Snapshot

__all__ = [
    "SPILL_BYTES",
    "ChunkLoader",
    "EarlyWriter",
    "Presorted",
    "bulk_load",
    "carry_upper",
    "put_many",
]

Nodes = dict[bytes, bytes | None]


class EarlyWriter(Protocol):
    """``Txn.early_writer``: ``records`` into the LMDB txn the commit will finish (tree
    records; data entries with ``entries``)."""

    def __call__(self, records: Presorted, *, entries: bool = False) -> None: ...


SPILL_BYTES = 256 << 20
"""A state sync's entries (keys and values) held in memory past which :class:`ChunkLoader`
writes them into the sync's LMDB txn (``SyncLoader.spill``), so a sync holds at most about
this much of them, not the whole state (1M keys of 96-byte values: ~121 MB).  Entries
after the first spill are inserted among those already written, not appended: measured
+6-11% on a 3M-key sync at 256 MiB, +15-30% at 64 MiB."""


class Presorted(Mapping[bytes, bytes]):
    """Records already in ascending key order, held in C by a ``_smtfast.SyncLoader``
    (``which`` 0: the entries, 1: the tree records, after ``finish()``; 2: the tree
    records its last ``settle()`` handed out; 3: the entries its last ``spill()`` handed
    out): a read-only
    mapping (a lookup bisects) that :func:`put_many` writes with one ``putmulti`` of
    :meth:`window`, with no Python object made per record."""

    __slots__ = ("_src", "_which")

    def __init__(self, src: _smtfast.SyncLoader, which: int) -> None:
        self._src = src
        self._which = which

    def pairs(self) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` in key order."""
        return self._src.records(self._which)

    def window(self) -> Iterator[tuple[Any, Any]]:
        """:meth:`pairs` as ONE reused 2-tuple of read-only buffers onto the C arrays, each
        pair valid until the next is taken: for a consumer that copies each pair before
        taking the next (LMDB's ``putmulti``); one that keeps a pair gets RuntimeError."""
        return self._src.window(self._which)

    def __len__(self) -> int:
        return self._src.count(self._which)

    def __iter__(self) -> Iterator[bytes]:
        return (key for key, _ in self.pairs())

    def __getitem__(self, key: bytes) -> bytes:
        value = self._src.get(self._which, key)
        if value is None:
            raise KeyError(key)
        return value


def put_many(txn: Any, db: Any, ops: Mapping[bytes, Any] | list[tuple[bytes, Any]]) -> None:
    """Write ``ops`` (a mapping or ``(key, value)`` pairs; None = delete) with one cursor
    ``putmulti``, keys sorted (in C when the extension is built) and appended when every
    key sorts after the last one stored."""
    if not ops:
        return
    if isinstance(ops, Presorted):  # already in order, no deletes
        cur = txn.cursor(db=db)
        try:
            append = not cur.last() or cur.key() < next(iter(ops))
            done = lmdbfast.putmulti(cur, ops.window(), append)
        finally:
            cur.close()
        if done != (len(ops), len(ops)):  # an append skips a key that is not above the last
            raise StoreError(f"{done[1]} of {len(ops)} presorted records written (a bug)")
        return
    if not isinstance(ops, dict | list):
        ops = dict(ops)
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
        lmdbfast.putmulti(cur, puts, not cur.last() or cur.key() < first)
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
    updated in place rather than copied (a copy costs O(memo) = O(n/8): two memcpys)."""
    if len(nodes) > 4 * len(base.upper) + 4096:
        return None
    split = base.split
    upper = base.upper if steal else base.upper.copy()
    pairs = nodes if isinstance(nodes, dict | list) else dict(nodes.items())
    if isinstance(upper, dict):
        items = pairs.items() if isinstance(pairs, dict) else pairs
        upper.update((k, v) for k, v in items if k[32] < split)
    else:
        upper.absorb(pairs, split)  # the same in C
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
    everything into the txn (which the caller commits).  With the C extension a
    ``_smtfast.SyncLoader`` holds it all; without it, chunks are checked with
    :func:`~zapstack.zapdb.proofs.verify_chunk` and written with ``txn.set``.
    ``spill_bytes`` (default :data:`SPILL_BYTES`, read when the loader is made) bounds the
    entries it holds: past it they go into the txn's LMDB txn (C loader, early writes).
    """

    def __init__(self, txn: Txn, root: bytes, depth: int, spill_bytes: int | None = None) -> None:
        if not 0 <= depth <= MAX_CHUNK_DEPTH:
            raise LocalProtocolError(f"chunk depth {depth} out of range")
        if txn.base_root() != smt.EMPTY:
            raise StoreError("state sync needs an empty store")
        self.root = root
        self.depth = depth
        self._txn = txn
        self._done: set[int] = set()
        self._sync = _smtfast.SyncLoader(root, depth) if batch.FAST else None
        self._early = txn.early_writer() if self._sync is not None else None
        """Writes settled tree records into the commit's LMDB txn (:mod:`.early`), or None."""
        self._spill_bytes = SPILL_BYTES if spill_bytes is None else spill_bytes

    def _settle(self) -> None:
        """Write the tree records that just became final (``SyncLoader.settle``: the chunks
        up to the first one missing) into the LMDB txn the commit will finish, so that the
        commit is left with the entries and the records above the chunks; and, once the
        entries kept pass ``spill_bytes``, those entries too (sorted; the LMDB txn takes
        them, so memory holds at most about that much of them)."""
        if self._early is None or self._sync is None:
            return
        if self._sync.settle():
            self._early(Presorted(self._sync, 2))
        if self._sync.arena()[1] >= self._spill_bytes and self._sync.spill():
            try:
                self._early(Presorted(self._sync, 3), entries=True)
            finally:
                self._sync.drop_spill()

    def add(self, chunk: StateChunk) -> bool:
        """Verify ``chunk`` against the root and keep it; False (nothing kept) if it fails.
        A repeat is checked, nothing more kept."""
        if chunk.depth != self.depth or not 0 <= chunk.index < 1 << self.depth:
            return False
        if chunk.index in self._done or self._sync is None:
            if not verify_chunk(self.root, chunk):
                return False
            if chunk.index not in self._done:  # the fallback: ordinary txn writes
                for key, value in chunk.entries:
                    self._txn.set(key, value)
        elif len(chunk.siblings) == self.depth and chunk.terminal is None:
            try:
                ok = self._sync.add(chunk.index, chunk.entries, chunk.siblings)
            except TypeError:  # not exact (bytes, bytes) tuples (the parser's are)
                sibs = tuple(bytes(s) for s in chunk.siblings)
                ok = self._sync.add(chunk.index, _plain(chunk.entries), sibs)
            if not ok:
                return False
        else:  # the walk stopped above the chunk: at most one leaf, checked the plain way
            if not verify_chunk(self.root, chunk):
                return False
            top, record = smt.EMPTY, None
            if chunk.entries:
                key, value = chunk.entries[0]
                kh, vh = smt.key_hash(key), hashlib.sha256(value).digest()
                top, record = smt.leaf_hash(kh, vh), smt.leaf_record(kh, vh, key)
            self._sync.add_top(chunk.index, _plain(chunk.entries), top, record)
        self._done.add(chunk.index)
        self._settle()
        return True

    def add_many(self, chunks: Sequence[StateChunk]) -> list[bool]:
        """:meth:`add` for each chunk (same verdicts, same chunks kept).  With the C loader,
        the chunks that carry all their siblings are checked together on two threads
        (``SyncLoader.add_many``: the hashing releases the GIL); the rest one by one."""
        if self._sync is None:
            return [self.add(chunk) for chunk in chunks]
        batch: dict[int, int] = {}  # chunk index -> position, the first of each index
        for pos, chunk in enumerate(chunks):
            if (
                chunk.depth == self.depth
                and 0 <= chunk.index < 1 << self.depth
                and chunk.index not in self._done
                and chunk.index not in batch
                and len(chunk.siblings) == self.depth
                and chunk.terminal is None
            ):
                batch[chunk.index] = pos
        verdicts: dict[int, bool] = {}
        if batch:
            picked = [chunks[pos] for pos in batch.values()]
            try:
                oks = self._sync.add_many([(c.index, c.entries, c.siblings) for c in picked])
            except TypeError:  # not exact (bytes, bytes) tuples (the parser's are)
                oks = self._sync.add_many(
                    [(c.index, _plain(c.entries), tuple(map(bytes, c.siblings))) for c in picked]
                )
            for chunk, ok in zip(picked, oks, strict=True):
                verdicts[batch[chunk.index]] = ok
                if ok:
                    self._done.add(chunk.index)
            self._settle()
        return [verdicts[p] if p in verdicts else self.add(c) for p, c in enumerate(chunks)]

    def finish(self) -> bytes:
        """Join the chunks, check the root, install into the txn; return the root."""
        if len(self._done) != 1 << self.depth:
            raise LocalProtocolError("state sync finished before every chunk was added")
        if self._sync is None:
            if self._txn.root() != self.root:  # unreachable with verified chunks: a bug
                raise LocalProtocolError("verified chunks do not rebuild the target root")
            return self.root
        try:
            root = self._sync.finish()
        except ValueError as exc:  # unreachable with verified chunks: a bug
            raise LocalProtocolError(f"verified chunks do not join to the root: {exc}") from None
        self._txn.install(Presorted(self._sync, 0), Presorted(self._sync, 1), root)
        return root


def _plain(entries: tuple[tuple[bytes, bytes], ...]) -> tuple[tuple[bytes, bytes], ...]:
    """``entries`` as exact ``(bytes, bytes)`` tuples, what the C loader takes."""
    return tuple((bytes(k), bytes(v)) for k, v in entries)
