"""ZapDB: the durable store (LMDB) and its commit path.

Layout (``docs/formats/zapdb.md``): one LMDB environment with three named
databases -- ``data`` (key -> value), ``nodes`` (state-tree node records, see
:mod:`.smt`) and ``meta`` (``version``: u64 big-endian commit count, ``root``:
the 32-byte state root, ``u/<name>``: caller metadata).  All three change in
the same LMDB write txn, so the stored root always matches the stored data.

Durability: LMDB commits are copy-on-write with a synced meta page
(``sync=True``), so a committed txn survives ``kill -9`` at any instant and a
torn commit is invisible on reopen.

Concurrency: one writer at a time (``_write_lock``), any number of readers on O(1)
snapshots; the head snapshot is shared by every txn, branch and view opened while the
head stays put (``_head_lock`` guards its reference count).

Fault injection (:mod:`.faults`): the commit path's writes fail on demand (ENOSPC, EIO) as
LMDB failing them would: the LMDB txn is aborted, the store halts.  Early writes
(:mod:`.early`): a state load's tree records (and entries, past a bound) go into the LMDB
txn its commit will finish, as they become final."""

from __future__ import annotations

import itertools
import os
import random
import threading
from collections.abc import Mapping
from typing import Any

import lmdb

from zapstack.errors import ConflictError, FatalStoreError, StoreError
from zapstack.zapdb import batch, bulk, smt
from zapstack.zapdb.early import EarlyTxn
from zapstack.zapdb.faults import FailAt, FaultInjector
from zapstack.zapdb.files import LAYOUT, check_files, check_layout
from zapstack.zapdb.hot import HotValues
from zapstack.zapdb.txn import Branch, Txn, Value
from zapstack.zapdb.view import META_PREFIX, ReadView, Snapshot

__all__ = ["DEFAULT_MAP_SIZE", "LAYOUT", "FailAt", "FaultInjector", "ZapDB", "check_files"]

DEFAULT_MAP_SIZE = 1 << 32
"""Largest size the LMDB file may grow to (4 GiB, sparse; raise for big states)."""

_VERSION, _ROOT = b"version", b"root"
_UNCACHED = 3
"""Tree levels read from LMDB below the memoised upper tree (see :func:`.bulk.carry_upper`)."""


class ZapDB:
    """The persistent MVCC store.  Open with :meth:`open`; see the package docs."""

    def __init__(
        self,
        env: Any,
        dbs: tuple[Any, Any, Any],
        version: int,
        root: bytes,
        fault_injector: FaultInjector | None,
        write_order_seed: int | None,
    ) -> None:
        self._env = env
        self._dbs = dbs
        self._version = version
        self._root = root
        self._fault = fault_injector
        self._seed = write_order_seed
        self._serials = itertools.count(1)
        self._write_lock = threading.Lock()
        self._head_lock = threading.Lock()
        self._head: Snapshot | None = None
        self._live: set[Snapshot] = set()
        self._halted: BaseException | None = None
        self._closed = False
        self._carry: tuple[int, int, batch.Memo, bool] | None = None
        """(version, split, upper, warm): the next head snapshot's upper-tree memo."""
        self._hot = HotValues(version)
        """Values read at the head, kept across commits (:mod:`.hot`)."""
        self._early: EarlyTxn | None = None
        """A txn's LMDB write txn opened before its commit (:mod:`.early`)."""

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        fault_injector: FaultInjector | None = None,
        write_order_seed: int | None = None,
        sync: bool = True,
    ) -> ZapDB:
        """Open (creating if needed) the store in directory ``path``.

        ``write_order_seed`` shuffles the order in which commits physically
        apply writes and tree updates (the root must not depend on it).
        ``sync=False`` trades crash durability for speed (benchmarks only).
        Raises FatalStoreError if ``data.mdb`` is truncated or its meta pages are
        corrupt (:func:`check_files`, before LMDB maps it), LMDB cannot open the
        files, or the stored tree does not match the stored root.
        """
        check_files(path)
        try:
            env = lmdb.open(
                os.fspath(path),
                map_size=map_size,
                max_dbs=3,
                max_readers=1024,
                sync=sync,
                metasync=sync,
                readahead=False,
            )
            dbs = (env.open_db(b"data"), env.open_db(b"nodes"), env.open_db(b"meta"))
            with env.begin(write=True) as txn:
                problem = check_layout(txn, dbs)
                raw_version = txn.get(_VERSION, db=dbs[2])
                root = txn.get(_ROOT, db=dbs[2]) or smt.EMPTY
                tree = smt.child_hash(txn.get(smt.ROOT_PATH, db=dbs[1]))
        except lmdb.Error as exc:
            raise FatalStoreError(f"cannot open ZapDB at {path}: {exc}") from exc
        if problem is not None:
            env.close()
            raise FatalStoreError(f"ZapDB at {path}: {problem}")
        if tree != root:
            env.close()
            raise FatalStoreError(f"ZapDB at {path}: stored tree does not match stored root")
        version = int.from_bytes(raw_version, "big") if raw_version else 0
        return cls(env, dbs, version, root, fault_injector, write_order_seed)

    # -------------------------------------------------------------- head info
    @property
    def version(self) -> int:
        """Number of commits since the store was created (the head's version)."""
        return self._version

    @property
    def halted(self) -> bool:
        """True after a FatalStoreError: writes are refused until reopen."""
        return self._halted is not None

    def root(self) -> bytes:
        """The committed state root (32 bytes)."""
        return self._root

    def meta_get(self, name: bytes) -> bytes | None:
        """Committed metadata written by ``Txn.meta_set``."""
        with self.read() as view:
            return view.meta_get(name)

    def snapshot_refs(self) -> int:
        """Outstanding users (txns, branches, views) of read snapshots: a leak check.  The
        database's own reference to its cached head snapshot is not counted, so this is 0
        whenever every txn, branch and view has been released."""
        with self._head_lock:
            own = 1 if self._head is not None else 0
            return sum(snap.refs for snap in self._live) - own

    def live_snapshots(self) -> int:
        """LMDB read txns currently open (the cached head one included)."""
        with self._head_lock:
            return len(self._live)

    # ------------------------------------------------------------ snapshots
    def _acquire(self) -> Snapshot:
        with self._head_lock:
            if self._closed:
                raise StoreError("ZapDB is closed")
            snap = self._head
            if snap is None:
                try:
                    txn = self._env.begin(write=False)
                except lmdb.Error as exc:
                    raise FatalStoreError(f"cannot open a read snapshot: {exc}") from exc
                split = max(0, txn.stat(self._dbs[0])["entries"].bit_length() - _UNCACHED)
                upper, warm = None, False
                if self._carry is not None and self._carry[:2] == (self._version, split):
                    upper, warm = self._carry[2], self._carry[3]
                self._carry = None
                snap = Snapshot(
                    txn,
                    self._dbs,
                    self._version,
                    self._root,
                    self._release,
                    self._retain,
                    upper,
                    split,
                    warm,
                    self._hot,
                )
                snap.refs = 1  # the database's own reference while it is the head
                self._head = snap
                self._live.add(snap)
            snap.refs += 1
            return snap

    def _retain(self, snap: Snapshot) -> None:
        with self._head_lock:
            if snap.refs <= 0 or snap not in self._live:
                raise StoreError("snapshot released")
            snap.refs += 1

    def _release(self, snap: Snapshot) -> None:
        with self._head_lock:
            self._drop_locked(snap)

    def _drop_locked(self, snap: Snapshot) -> None:
        snap.refs -= 1
        if snap.refs <= 0 and snap in self._live:
            self._live.discard(snap)
            txn = snap.detach()
            if txn is not None and not self._closed:
                txn.abort()

    def _check_writable(self) -> None:
        if self._halted is not None:
            raise FatalStoreError(f"ZapDB halted after an I/O failure: {self._halted}")

    def _rng(self, serial: int) -> random.Random | None:
        return None if self._seed is None else random.Random(f"{self._seed}/{serial}")

    def begin(self) -> Txn:
        """A read-write block txn on the current head."""
        self._check_writable()
        serial = next(self._serials)
        return Txn(self, self._acquire(), serial, self._rng(serial))

    def snapshot(self) -> Branch:
        """A speculative branch on the current head (O(1))."""
        self._check_writable()
        serial = next(self._serials)
        return Branch(self, self._acquire(), serial, self._rng(serial))

    def read(self) -> ReadView:
        """A read-only view of the committed head (O(1), independent of state size)."""
        return ReadView(self._acquire())

    # --------------------------------------------------------------- commit
    def _writable_at(self, base: Snapshot, owner: int) -> None:
        """Refuse a write on ``base`` by txn ``owner`` (call with the write lock held)."""
        if self._closed:
            raise StoreError("ZapDB is closed")
        self._check_writable()
        if self._early is not None and self._early.doomed:
            self._end_early(self._early.owner)
        if self._early is not None:
            self._early.check(owner)
        if base.version != self._version:
            raise ConflictError(
                f"commit on version {base.version} but the head is at {self._version}"
            )

    def _takes_early(self) -> bool:
        """Whether commits here take early writes (:mod:`.early`): not under a fault
        injector or write-order seed, whose commits go write by write."""
        return self._fault is None and self._seed is None

    def _early_put(
        self, owner: int, base: Snapshot, recs: bulk.Presorted, *, entries: bool = False
    ) -> None:
        """Write ``recs`` (final tree records; ``entries``: data) into the LMDB txn that txn
        ``owner``'s commit will finish, opened by the first call (:mod:`.early`)."""
        with self._write_lock:
            self._writable_at(base, owner)
            try:
                if self._early is None:
                    self._early = EarlyTxn(owner, self._env.begin(write=True))
                bulk.put_many(self._early.txn, self._dbs[0 if entries else 1], recs)
            except (lmdb.Error, OSError) as exc:
                self._end_early(owner)
                self._halted = exc
                raise FatalStoreError(f"ZapDB write failed, txn discarded: {exc}") from exc

    def _end_early(self, owner: int) -> None:
        """Abort txn ``owner``'s early LMDB txn if it has one, or doom it when called
        off its thread (idempotent)."""
        early = self._early
        if early is not None and early.owner == owner:
            if early.on_thread():
                self._early = None
                early.txn.abort()
            else:
                early.doomed = True

    def _discarded(self, owner: int) -> None:
        """Txn ``owner`` ended: its early LMDB txn, if any, is aborted.  Any other txn's end
        takes no lock (only the owner sets ``_early`` to its own record)."""
        early = self._early
        if early is not None and early.owner == owner:
            with self._write_lock:
                self._end_early(owner)

    def _commit_work(
        self,
        base: Snapshot,
        writes: Mapping[bytes, Value | None],
        nodes: batch.NodeWrites,
        meta: dict[bytes, bytes],
        root: bytes,
        rng: random.Random | None,
        owner: int,
    ) -> None:
        with self._write_lock:
            self._writable_at(base, owner)
            if self._early is not None and not isinstance(nodes, bulk.Presorted):
                self._end_early(owner)  # early records belong with the state a loader finished
                raise StoreError("a state load commits only once its loader has finished")
            try:
                self._write(writes, nodes, meta, root, rng)
            except (lmdb.Error, OSError) as exc:
                self._halted = exc
                raise FatalStoreError(f"ZapDB write failed, txn discarded: {exc}") from exc
            if self._fault is None and rng is None:
                with self._head_lock:  # no longer the head: nobody new can take it
                    alone = base.refs == 1  # only the committing txn still holds it
                self._carry = bulk.carry_upper(base, nodes, self._version, steal=alone)

    def _write(
        self,
        writes: Mapping[bytes, Value | None],
        nodes: batch.NodeWrites,
        meta: dict[bytes, bytes],
        root: bytes,
        rng: random.Random | None,
    ) -> None:
        """One LMDB txn: data, tree records, meta.  Without a fault injector or shuffle,
        one ``putmulti`` per database (:func:`.bulk.put_many`); else write by write."""
        (data_db, node_db, meta_db), inject, n = self._dbs, self._fault, 0
        early, self._early = self._early, None  # the owner's (checked): its commit finishes it
        txn = early.txn if early is not None else self._env.begin(write=True)
        try:
            one_by_one: tuple[tuple[Any, list[tuple[bytes, Any]], str, str], ...] = ()
            if inject is None and rng is None:
                bulk.put_many(txn, data_db, writes)
                bulk.put_many(txn, node_db, nodes)
            else:
                one_by_one = (
                    (data_db, sorted(writes.items()), "put", "delete"),
                    (node_db, sorted(_pairs(nodes)), "node_put", "node_delete"),
                )
            for db, ops, put_op, del_op in one_by_one:
                if rng is not None:
                    rng.shuffle(ops)
                for key, value in ops:
                    if inject is not None:
                        inject(del_op if value is None else put_op, n)
                    if value is None:
                        txn.delete(key, db=db)
                    else:
                        txn.put(key, value, db=db)
                    n += 1
            meta_ops = [(META_PREFIX + k, v) for k, v in sorted(meta.items())]
            meta_ops += [(_VERSION, (self._version + 1).to_bytes(8, "big")), (_ROOT, root)]
            for key, value in meta_ops:
                if inject is not None:
                    inject("meta", n)
                txn.put(key, value, db=meta_db)
                n += 1
            if inject is not None:
                inject("commit", n)
            with self._head_lock:
                txn.commit()
                self._version += 1
                self._hot.advance(self._version - 1, self._version, writes)
                self._root = root
                old, self._head = self._head, None
                if old is not None:
                    self._drop_locked(old)
        except BaseException:
            txn.abort()
            raise

    # ---------------------------------------------------------------- close
    def close(self) -> None:
        """Release every snapshot and close LMDB; idempotent.  Open txns become unusable."""
        with self._write_lock, self._head_lock:
            if self._closed:
                return
            if self._early is not None:  # a state load never committed: abort it
                if not self._early.on_thread():  # LMDB would wait for that thread forever
                    raise StoreError("close a store on the thread of its open state load")
                self._end_early(self._early.owner)
            self._closed = True
            for snap in list(self._live):
                snap.detach()
            self._live.clear()
            self._head = None
            self._env.close()

    def __enter__(self) -> ZapDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pairs(nodes: batch.NodeWrites) -> list[tuple[bytes, bytes | None]]:
    """A commit's tree records as ``(key, record)`` pairs."""
    return nodes if isinstance(nodes, list) else list(nodes.items())
