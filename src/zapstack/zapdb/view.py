"""Shared read snapshots and the read-only :class:`ReadView`.

A :class:`Snapshot` wraps one LMDB read transaction: a frozen, consistent view
of the data, the state-tree nodes and the metadata at one committed version.
Opening one costs O(1) whatever the state size (LMDB copy-on-write pages; a
reader only pins a version pointer).  Every txn, branch and read view created
while the head stays at one version shares the *same* snapshot; it is
reference-counted and its LMDB read txn is released when the last user lets go
and the head has moved on.

Concurrency: an LMDB read txn must not be used by two threads at once, so each
snapshot serialises its own reads with a lock (short: one ``mdb_get`` or one
range scan).  Views are safe to use from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from zapstack.errors import StoreError
from zapstack.zapdb import batch, lmdbfast, proofs, smt
from zapstack.zapdb.hot import MISS, HotValues

try:
    from zapstack.zapdb import _smtfast
except ImportError:  # pragma: no cover - the extension is optional
    _smtfast = None  # type: ignore[assignment]

__all__ = ["ReadView", "Snapshot", "key_range"]

META_PREFIX = b"u/"


def key_range(prefix: bytes, start: bytes | None, end: bytes | None) -> tuple[bytes, bytes | None]:
    """Translate ``prefix`` or ``[start, end)`` into one half-open range."""
    if prefix:
        if start is not None or end is not None:
            raise StoreError("iterate: give a prefix or a start/end range, not both")
        stripped = prefix.rstrip(b"\xff")
        upper = stripped[:-1] + bytes((stripped[-1] + 1,)) if stripped else None
        return prefix, upper
    return start or b"", end


_VALUE_SLICE = 512
"""Keys whose values a bounded :meth:`Snapshot.entries_under` reads in one ``getmulti``."""


def _key_bytes(keys: list[bytes], per_entry: int) -> int:
    return per_entry * len(keys) + sum(map(len, keys))


def _values_within(
    vals: Any, keys: list[bytes], left: int
) -> tuple[tuple[bytes, bytes], ...] | None:
    """``(key, value)`` for ``keys`` from cursor ``vals``, read a slice at a time; None as
    soon as the values' lengths add up to more than ``left``."""
    out: list[tuple[bytes, bytes]] = []
    for i in range(0, len(keys), _VALUE_SLICE):
        got, size = lmdbfast.getmulti_sized(vals, keys[i : i + _VALUE_SLICE], nogil=True)
        left -= size
        if left < 0:
            return None
        out += got
    return tuple(out)


class Snapshot:
    """One LMDB read transaction shared by every user at one committed version."""

    __slots__ = (
        "_data",
        "_hot",
        "_lock",
        "_meta",
        "_nodes",
        "_release",
        "_retain",
        "refs",
        "root",
        "split",
        "txn",
        "upper",
        "version",
        "warm",
    )

    def __init__(
        self,
        txn: Any,
        dbs: tuple[Any, Any, Any],
        version: int,
        root: bytes,
        release: Callable[[Snapshot], None],
        retain: Callable[[Snapshot], None],
        upper: batch.Memo | None = None,
        split: int = 0,
        warm: bool = False,
        hot: HotValues | None = None,
    ) -> None:
        self.txn: Any = txn
        """The LMDB read txn (None once released)."""
        self._data, self._nodes, self._meta = dbs
        self.version = version
        """Commit count of the head this snapshot shows."""
        self.root = root
        """State root at ``version``."""
        self.refs = 0
        """Users holding this snapshot (guarded by the database's head lock)."""
        self._lock = threading.Lock()
        self._release = release
        self._retain = retain
        self.upper: batch.Memo = batch.new_memo() if upper is None else upper
        """Memo of this version's tree records at depths < ``split`` (None = empty; a C
        ``NodeTable`` when the extension is built), shared by every txn on it; only ever
        grows, and only with this version's facts."""
        self.split = split
        """Depth above which node reads are memoised in ``upper`` (log2(entries) - 3)."""
        self.warm = warm
        """Whether ``upper`` holds every stored record above ``split`` (see :meth:`warm_upper`)."""
        self._hot = hot
        """The store's values read at the head, shared by every snapshot (:mod:`.hot`)."""

    def _txn(self) -> Any:
        txn = self.txn
        if txn is None:
            raise StoreError("snapshot released: the database was closed")
        return txn

    def get(self, key: bytes) -> bytes | None:
        """The committed value of ``key`` at this version."""
        hot = self._hot
        if hot is not None:
            known = hot.get(key, self.version)
            if known is not MISS:
                return known  # type: ignore[return-value]
        with self._lock:
            value: bytes | None = self._txn().get(key, db=self._data)
        if hot is not None:
            hot.fill(key, value, self.version)
        return value

    def entries(self) -> int:
        """Entries of the data database at this version (LMDB's count: O(1))."""
        with self._lock:
            return int(self._txn().stat(self._data)["entries"])

    def get_node(self, path: bytes) -> bytes | None:
        """A state-tree node record at this version (NodeStore protocol)."""
        with self._lock:
            txn = self.txn
            if txn is None:
                raise StoreError("snapshot released: the database was closed")
            rec: bytes | None = txn.get(path, db=self._nodes)
        return rec

    def put_node(self, path: bytes, record: bytes | None) -> None:
        raise StoreError("a snapshot is read-only")

    @contextmanager
    def node_reader(self) -> Iterator[Callable[[bytes], bytes | None]]:
        """Hold this snapshot's lock and yield ``nodes``' get (:func:`.lmdbfast.getter`: C
        reads it in place) for one C merge, which calls nothing else on this snapshot.  The
        merge reads in key order (layout v2), and an LMDB cursor looks a key up within its
        current leaf page first, so a path's records below the memo cost one descent."""
        with self._lock:
            cur = self._txn().cursor(db=self._nodes)
            try:
                yield lmdbfast.getter(cur, nogil=True)
            finally:
                cur.close()

    def entries_under(
        self, depth: int, prefix: int, budget: int | None = None, per_entry: int = 0
    ) -> tuple[tuple[bytes, bytes], ...] | None:
        """``(key, value)`` of the leaves below ``(depth, prefix)``, sorted by key hash: the
        subtree's records are one run of ``nodes`` from its root's key (layout v2:
        pre-order), read by one cursor, then the values, under one hold of the lock.  With
        the C extension (``_smtfast_serve.h``) the run is read as values only and ends where
        a pre-order count of the children due ends, and the values come from ``getmulti``;
        :meth:`entries_under_py` is the same in plain Python.

        With ``budget``, None once the entries' ``per_entry + len(key) + len(value)`` add up
        to more than ``budget``: the walk stops at the key that passes it, the values are
        read a slice at a time, so the work stays near ``budget`` bytes however large the
        subtree is (a server bounds a hostile request so)."""
        if _smtfast is None:
            return self.entries_under_py(depth, prefix, budget, per_entry)
        root_key = smt.path_key(prefix, depth)
        keys: list[bytes] = []
        left = -1 if budget is None else budget
        with self._lock:
            txn = self._txn()
            cur = txn.cursor(db=self._nodes)
            vals = txn.cursor(db=self._data)
            try:
                if cur.set_key(root_key):  # absent: empty subtree, or its lone leaf sits above
                    path = prefix.to_bytes(32, "big")
                    run = cur if lmdbfast.BRIDGED else cur.iternext(keys=False)
                    if not _smtfast.subtree_keys(run, depth, path, keys, left, per_entry, True):
                        return None
                entries: tuple[tuple[bytes, bytes], ...] | None
                if budget is None:
                    entries = tuple(lmdbfast.getmulti(vals, keys, nogil=True))
                else:
                    left -= _key_bytes(keys, per_entry)
                    entries = _values_within(vals, keys, left)
            except ValueError as exc:
                raise StoreError(f"the store is corrupt: {exc}") from None
            finally:
                cur.close()
                vals.close()
        if entries is not None and len(entries) != len(keys):
            raise StoreError("a tree leaf has no stored value: the store is corrupt")
        return entries

    def entries_under_py(
        self, depth: int, prefix: int, budget: int | None = None, per_entry: int = 0
    ) -> tuple[tuple[bytes, bytes], ...] | None:
        """:meth:`entries_under` in plain Python (the reference; tests hold them equal)."""
        lo, end = smt.subtree_range(depth, prefix)
        out: list[bytes] = []
        with self._lock:
            cur = self._txn().cursor(db=self._nodes)
            try:
                if cur.set_range(lo):
                    for key, rec in cur.iternext():
                        if key >= end:
                            break
                        if rec[0] == smt.LEAF_TAG:
                            out.append(rec)
                out.sort(key=lambda r: r[1:33])
                get, data = self._txn().get, self._data
                entries = tuple((rec[65:], get(rec[65:], db=data)) for rec in out)
            finally:
                cur.close()
        if any(value is None for _, value in entries):
            raise StoreError("a tree leaf has no stored value: the store is corrupt")
        size = sum(per_entry + len(k) + len(v) for k, v in entries)
        return None if budget is not None and size > budget else entries

    def warm_upper(self) -> None:
        """Load every tree record above ``split`` into ``upper``: a pre-order walk from the
        root (ascending keys, one cursor), reading only non-empty children (an interior
        record holds its children's hashes).  Done once, by the first txn that computes a
        root here: about 2**split records, n/8 for n entries, so every later walk reads
        only the deepest levels.  In C when built (:meth:`warm_upper_py` is the same)."""
        if self.warm:
            return
        with self.node_reader() as get:
            if not self.warm:
                if _smtfast is not None and not isinstance(self.upper, dict):
                    _smtfast.warm(get, self.upper, self.split)
                else:
                    self._warm_py(get, 0, 0, known_empty=False)
                self.warm = True

    def warm_upper_py(self) -> None:
        """:meth:`warm_upper` in plain Python (the reference; tests hold them equal)."""
        if self.warm:
            return
        with self.node_reader() as get:
            if not self.warm:
                self._warm_py(get, 0, 0, known_empty=False)
                self.warm = True

    def _warm_py(
        self, get: Callable[[bytes], bytes | None], depth: int, prefix: int, *, known_empty: bool
    ) -> None:
        if depth >= self.split:
            return
        key = smt.path_key(prefix, depth)
        rec = None if known_empty else get(key)
        self.upper[key] = rec
        if rec is not None and rec[0] == smt.NODE_TAG:
            right = prefix | (1 << (255 - depth))
            self._warm_py(get, depth + 1, prefix, known_empty=rec[1:33] == smt.EMPTY)
            self._warm_py(get, depth + 1, right, known_empty=rec[33:65] == smt.EMPTY)

    def meta(self, name: bytes) -> bytes | None:
        """A metadata value (user namespace) at this version."""
        with self._lock:
            value: bytes | None = self._txn().get(META_PREFIX + name, db=self._meta)
        return value

    def scan(self, start: bytes, end: bytes | None) -> list[tuple[bytes, bytes]]:
        """Committed entries with ``start <= key < end`` in key order."""
        out: list[tuple[bytes, bytes]] = []
        with self._lock:
            cur = self._txn().cursor(db=self._data)
            try:
                if not cur.set_range(start):
                    return out
                for key, value in cur.iternext():
                    if end is not None and key >= end:
                        break
                    out.append((key, value))
            finally:
                cur.close()
        return out

    def detach(self) -> Any:
        """Take the LMDB txn away (waits for an in-flight read); return it."""
        with self._lock:
            txn, self.txn = self.txn, None
        return txn

    def release(self) -> None:
        """Drop one reference (the database aborts the txn when none are left)."""
        self._release(self)

    def retain(self) -> None:
        """Take one more reference (StoreError once none are left: the txn is gone)."""
        self._retain(self)


class ReadView:
    """A read-only O(1) snapshot of the committed state (``ZapDB.read()``).

    ``close()`` is idempotent; a view is also a context manager.  Reads after
    ``close()`` raise :class:`StoreError`.
    """

    __slots__ = ("_lock", "_snap")

    def __init__(self, snap: Snapshot) -> None:
        self._snap: Snapshot | None = snap
        self._lock = threading.Lock()

    def _s(self) -> Snapshot:
        snap = self._snap
        if snap is None:
            raise StoreError("read view is closed")
        return snap

    @property
    def version(self) -> int:
        """Commit count of the state this view shows."""
        return self._s().version

    def root(self) -> bytes:
        """The state root of this view."""
        return self._s().root

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` or None."""
        return self._s().get(bytes(key))

    def entries(self) -> int:
        """State entries at this version (O(1): LMDB's count of the data database)."""
        return self._s().entries()

    def meta_get(self, name: bytes) -> bytes | None:
        """Metadata stored with ``meta_set`` in the commit this view shows."""
        return self._s().meta(name)

    def iterate(
        self, prefix: bytes = b"", *, start: bytes | None = None, end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Entries in key order, by ``prefix`` or half-open range ``[start, end)``."""
        lo, hi = key_range(prefix, start, end)
        return iter(self._s().scan(lo, hi))

    def prove(self, key: bytes) -> proofs.Proof:
        """A (non-)membership proof for ``key`` against :meth:`root`."""
        return proofs.prove(self._s(), bytes(key))

    def chunk(self, depth: int, index: int, limit: int | None = None) -> proofs.StateChunk:
        """Verifiable state chunk ``index`` of ``2**depth`` (see :mod:`.proofs`);
        :class:`~.proofs.ChunkTooLarge` if its record body would pass ``limit`` bytes."""
        snap = self._s()
        return proofs.make_chunk(snap, snap.get, depth, index, limit=limit)

    def tree_root(self) -> bytes:
        """The root recomputed from the stored tree nodes (a consistency check)."""
        return smt.root_of_store(self._s())

    def retain(self) -> ReadView:
        """Another view of this one's snapshot (one more reference): it stays readable when
        this view is closed, and is closed on its own.  StoreError if this view is closed."""
        with self._lock:  # not closed meanwhile: close() takes the lock too
            snap = self._s()
            snap.retain()
        return ReadView(snap)

    def close(self) -> None:
        """Release the snapshot; idempotent."""
        with self._lock:
            snap, self._snap = self._snap, None
        if snap is not None:
            snap.release()

    def __enter__(self) -> ReadView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
