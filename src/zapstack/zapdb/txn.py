"""Read-write transactions and speculative branches: overlays on one snapshot.

Theory of operation
-------------------
A :class:`Txn` (``ZapDB.begin()``) and a :class:`Branch` (``ZapDB.snapshot()``)
are the same machine: an in-memory overlay -- ``writes`` (key -> value, or
None for a tombstone) -- over one shared, immutable :class:`Snapshot` of the
head at creation.  Reads look in the overlay, then in the snapshot.  Nothing
reaches LMDB until :meth:`Txn.commit`, which replays the overlay and the
updated state-tree nodes in ONE LMDB write transaction, so no other reader
ever sees half of it.

* ``commit()`` succeeds only if the head is still the snapshot's version; otherwise
  it raises :class:`ConflictError` (never a silent merge).  Hence exactly one
  txn/branch per base version can commit.  A failed commit (conflict or I/O) leaves
  the txn discarded.
* ``discard()`` drops the overlay reference and releases the snapshot: O(1),
  idempotent, callable from a ``finally``, from any thread, in any state (after
  commit it does nothing); it also ends the txn's early LMDB txn (:mod:`.early`).
* Per-tx undo: ``begin_tx()`` ... ``end_tx() -> Diff`` (or ``with txn.tx():``) brackets
  one tx.  Every write appends ``(key, prior overlay entry)`` to an undo log;
  ``rollback(diff)`` pops the log back to where that tx began, so it costs O(diff)
  and restores the txn exactly (savepoint semantics: txs ended after ``diff`` are
  undone too).  Rolling back a diff already undone, or on a closed txn, returns False.
* ``root()`` is the state root as if committed now.  Changed keys are queued and
  folded into a private overlay of tree nodes on demand: O(keys changed since the
  last ``root()`` x depth).

Metadata set with ``meta_set`` is written in the same commit but is neither
part of the state root nor of tx diffs.  ``Branch.fork()`` copies a branch onto
its snapshot (to build on an uncommitted block; the parent is untouched).

Threads: one thread uses a txn at a time; ``discard()`` may race with it from
any thread (the other thread's next call raises :class:`StoreError`); ``fork()``
from any thread, of a branch no thread is writing.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Final

from zapstack.errors import LocalProtocolError, StoreError
from zapstack.zapdb import batch, smt
from zapstack.zapdb.view import Snapshot, key_range

if TYPE_CHECKING:
    from zapstack.zapdb.bulk import EarlyWriter
    from zapstack.zapdb.store import ZapDB

__all__ = ["MAX_KEY_LEN", "Branch", "Diff", "TxScope", "Txn", "Value"]

MAX_KEY_LEN: Final = 511
"""Keys are 1..511 bytes (LMDB's key limit)."""

Value = bytes | memoryview
"""A stored value: bytes or a read-only memoryview (kept as is, never copied)."""


class _Missing:
    """Sentinel: the key has no overlay entry (fall through to the snapshot)."""


_MISSING: Final = _Missing()
_Data = Mapping[bytes, Value | None]
_Nodes = Mapping[bytes, bytes | None]
Entry = Value | None | _Missing


@dataclass(frozen=True, slots=True)
class Diff:
    """The undo record of one tx inside one txn (returned by ``end_tx``)."""

    owner: int
    """Serial of the txn that produced it."""
    serial: int
    """Serial of the tx within that txn."""
    start: int
    """Undo-log length when the tx began."""
    end: int
    """Undo-log length when the tx ended."""
    keys: tuple[bytes, ...]
    """Keys the tx wrote, in first-write order."""


class TxScope:
    """Holder filled by ``with txn.tx() as scope``: ``scope.diff`` after a clean exit."""

    __slots__ = ("diff",)

    def __init__(self) -> None:
        self.diff: Diff | None = None


class _Work:
    """Everything a live txn owns; dropping the reference is the O(1) discard."""

    __slots__ = (
        "cache",
        "installed",
        "log",
        "marks",
        "meta",
        "open_tx",
        "pending",
        "root",
        "tree",
        "writes",
    )

    def __init__(self, root: bytes) -> None:
        self.writes: dict[bytes, Value | None] = {}
        self.log: list[tuple[bytes, Entry]] = []
        self.marks: list[tuple[int, int]] = []  # (diff serial, log start) of ended txs
        self.open_tx: tuple[int, int] | None = None
        self.pending: set[bytes] = set()
        self.tree: batch.Memo = batch.new_memo()  # the merges' tree records
        self.cache: batch.Memo = batch.new_memo()
        self.meta: dict[bytes, bytes] = {}
        self.root = root
        self.installed: tuple[_Data, _Nodes] | None = None


def check_key(key: bytes | bytearray | memoryview) -> bytes:
    """Validate a key; raise :class:`LocalProtocolError` outside 1..511 bytes."""
    if type(key) is not bytes:
        key = bytes(key)
    if not 0 < len(key) <= MAX_KEY_LEN:
        raise LocalProtocolError(f"key length {len(key)} outside 1..{MAX_KEY_LEN}")
    return key


def _check_value(value: bytes | bytearray | memoryview) -> Value:
    if type(value) is bytes:
        return value
    if isinstance(value, memoryview) and value.readonly and value.c_contiguous:
        return value.cast("B") if value.format != "B" or value.ndim != 1 else value
    return bytes(value)  # mutable buffers are copied once


class Txn:
    """A read-write block transaction over a shared snapshot (see module doc)."""

    __slots__ = ("_base", "_db", "_lock", "_rng", "_serial", "_state", "_tx_serial", "_work")

    def __init__(self, db: ZapDB, base: Snapshot, serial: int, rng: random.Random | None) -> None:
        self._db = db
        self._base = base
        self._serial = serial
        self._rng = rng
        self._lock = threading.Lock()
        self._state = "open"
        self._tx_serial = 0
        self._work: _Work | None = _Work(base.root)

    @property
    def base_version(self) -> int:
        """Commit count of the head this txn was opened on."""
        return self._base.version

    @property
    def state(self) -> str:
        """``"open"``, ``"committed"`` or ``"discarded"``."""
        return self._state

    def _live(self) -> _Work:
        work = self._work
        if work is None:
            raise StoreError(f"txn is {self._state}")
        return work

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` as this txn sees it, or None."""
        key = check_key(key)
        entry = ((w := self._live()).installed or (w.writes,))[0].get(key, _MISSING)
        if isinstance(entry, _Missing):
            return self._base.get(key)
        return entry if entry is None or type(entry) is bytes else bytes(entry)

    def iterate(
        self, prefix: bytes = b"", *, start: bytes | None = None, end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Entries in key order by ``prefix`` or range ``[start, end)``, overlay applied."""
        work = self._live()
        lo, hi = key_range(prefix, start, end)
        merged: dict[bytes, Value | None] = dict(self._base.scan(lo, hi))
        for key, value in list((work.installed or (work.writes,))[0].items()):
            if key >= lo and (hi is None or key < hi):
                merged[key] = value  # None: a tombstone
        return iter(sorted((k, bytes(v)) for k, v in merged.items() if v is not None))

    def _write(self, key: bytes, value: Value | None) -> None:
        work = self._live()
        if work.installed is not None:
            raise LocalProtocolError("a txn with an installed state takes no writes")
        writes = work.writes
        work.log.append((key, writes.get(key, _MISSING)))
        writes[key] = value
        work.pending.add(key)

    def set(self, key: bytes, value: bytes | bytearray | memoryview) -> None:
        """Write ``key = value`` (a read-only memoryview is kept without copying)."""
        self._write(check_key(key), _check_value(value))

    def delete(self, key: bytes) -> None:
        """Delete ``key`` (a tombstone in the overlay; absent keys are fine)."""
        self._write(check_key(key), None)

    def meta_set(self, name: bytes, value: bytes) -> None:
        """Store metadata (e.g. block height/id) atomically with this txn's commit."""
        self._live().meta[bytes(name)] = bytes(value)

    def begin_tx(self) -> None:
        """Start capturing one tx's diff; raise LocalProtocolError if one is open."""
        work = self._live()
        if work.open_tx is not None:
            raise LocalProtocolError("a tx is already open in this txn")
        self._tx_serial += 1
        work.open_tx = (self._tx_serial, len(work.log))

    def end_tx(self) -> Diff:
        """Finish the open tx and return its :class:`Diff`."""
        work = self._live()
        if work.open_tx is None:
            raise LocalProtocolError("end_tx without begin_tx")
        serial, start = work.open_tx
        work.open_tx = None
        work.marks.append((serial, start))
        keys = tuple(dict.fromkeys(k for k, _ in work.log[start:]))
        return Diff(self._serial, serial, start, len(work.log), keys)

    def abort_tx(self) -> bool:
        """Undo the open tx, if any (idempotent); True if something was undone."""
        work = self._work
        if work is None or work.open_tx is None:
            return False
        _undo_to(work, work.open_tx[1])
        work.open_tx = None
        return True

    @contextmanager
    def tx(self) -> Iterator[TxScope]:
        """``with txn.tx() as s:`` -- one tx; rolled back if the body raises."""
        self.begin_tx()
        scope = TxScope()
        try:
            yield scope
        except BaseException:
            self.abort_tx()
            raise
        scope.diff = self.end_tx()

    def rollback(self, diff: Diff) -> bool:
        """Undo ``diff`` (and every later tx) in O(diff); False if nothing to undo."""
        if diff.owner != self._serial:
            raise LocalProtocolError("rollback of a diff from another txn")
        work = self._work
        if work is None:
            return False
        marks = work.marks
        for idx in range(len(marks) - 1, -1, -1):
            if marks[idx][0] == diff.serial:
                break
        else:
            return False
        _undo_to(work, diff.start)
        del marks[idx:]
        work.open_tx = None
        return True

    def root(self) -> bytes:
        """The state root as if this txn committed now."""
        return self._flush(self._live())

    def tree_writes(self) -> int:
        """Tree records (interior nodes and leaves, deletes included) this txn's root has
        rewritten so far: the nodes a commit hashes and writes (a benchmark's measure)."""
        return len(self._live().tree)

    def _flush(self, work: _Work) -> bytes:
        if not work.pending:
            return work.root
        base = self._base
        shuffle = None if self._rng is None else self._rng.shuffle
        keys, values = batch.pending_lists(work.pending, work.writes, base.get, shuffle)
        store = batch.NodeOverlay(work.tree, work.cache, base)
        base.warm_upper()
        if batch.FAST:
            work.root = batch.merge_lists(store, keys, values)
        else:
            work.root = smt.apply_updates_py(store, zip(keys, values, strict=True))
        work.pending.clear()
        return work.root

    def base_root(self) -> bytes:
        """The state root of the snapshot this txn was opened on."""
        return self._base.root

    def install(self, writes: _Data, nodes: _Nodes, root: bytes) -> None:
        """Take a whole state built and checked elsewhere (:mod:`.bulk`) as this txn's data
        ``writes``, tree ``nodes`` and ``root`` (kept, not copied); it then takes no writes."""
        work = self._live()
        if work.writes or work.tree or work.installed:
            raise LocalProtocolError("install into a txn that already has writes")
        work.installed = (writes, nodes)
        work.root = root
        work.pending.clear()

    def commit(self) -> bytes:
        """Write the overlay durably in one LMDB txn; return the new state root.

        Raises ConflictError if the head moved since this txn's snapshot,
        FatalStoreError on an I/O failure, StoreError if already closed.  Any
        failure leaves this txn discarded and the last committed state intact.
        """
        with self._lock:
            work = self._live()
            try:
                root = self._flush(work)
                writes, nodes = work.installed or (work.writes, batch.node_writes(work.tree))
                db, serial = self._db, self._serial
                db._commit_work(self._base, writes, nodes, work.meta, root, self._rng, serial)
            except BaseException:
                self._close("discarded")
                raise
            self._close("committed")
            return root

    def discard(self) -> None:
        """Drop the overlay and release the snapshot: O(1), idempotent, any state."""
        with self._lock:
            if self._work is not None:
                self._close("discarded")

    def early_writer(self) -> EarlyWriter | None:
        """A writer of final tree records (``entries=True``: data entries) into the LMDB txn
        this txn's commit finishes (:mod:`.early`; state sync); None: all at commit."""
        self._live()
        if not self._db._takes_early():
            return None
        return partial(self._db._early_put, self._serial, self._base)

    def _close(self, state: str) -> None:
        self._work = None
        self._state = state
        self._base.release()
        self._db._discarded(self._serial)  # after a commit: nothing left to abort

    def __enter__(self) -> Txn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


class Branch(Txn):
    """A speculative branch (``ZapDB.snapshot()``): a :class:`Txn` used to apply a
    candidate block while consensus decides.  Branches opened at one head share
    its snapshot; the first to commit wins, the others get ConflictError."""

    __slots__ = ()

    def fork(self) -> Branch:
        """A new branch on this one's snapshot, starting from a copy of its writes,
        tree nodes and root (O(both)); later writes stay on their side.  It takes its
        own snapshot reference (under the head lock), so it outlives this branch;
        ``discard()`` releases it.  StoreError if this branch is closed."""
        db = self._db
        with self._lock:
            work = self._live()
            if work.open_tx is not None:
                raise LocalProtocolError("fork with a tx open")
            with db._head_lock:
                if db._closed or self._base.refs <= 0:
                    raise StoreError("ZapDB is closed")
                self._base.refs += 1
            serial = next(db._serials)
            child = Branch(db, self._base, serial, db._rng(serial))
            copy = child._live()
            copy.writes, copy.root = dict(work.writes), work.root
            copy.tree, copy.installed = work.tree.copy(), work.installed
            copy.cache, copy.pending = work.cache.copy(), set(work.pending)
            return child


def _undo_to(work: _Work, start: int) -> None:
    log, writes, pending = work.log, work.writes, work.pending
    for i in range(len(log) - 1, start - 1, -1):
        key, prior = log[i]
        if isinstance(prior, _Missing):
            writes.pop(key, None)
        else:
            writes[key] = prior
        pending.add(key)
    del log[start:]
