"""Early writes (zapdb/early.py): a state load's tree records go into the LMDB txn its commit
finishes, as they settle.  The store shows them only once that commit succeeds; a discard,
a close or a failure leaves the last committed state; nobody else commits meanwhile; and
the LMDB txn is touched only on the thread that opened it.  Expected records come from the
pure-Python tree (``apply_updates_py``), not from the loader."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from zapstack.errors import ConflictError, FatalStoreError, StoreError
from zapstack.zapdb import FailAt, StateChunk, ZapDB, batch, bulk
from zapstack.zapdb.early import EarlyTxn
from zapstack.zapdb.smt import EMPTY, DictNodeStore, apply_updates_py
from zapstack.zapdb.txn import Txn

pytestmark = pytest.mark.skipif(not batch.FAST, reason="early writes need the C loader")

DEPTH = 3


def _source(tmp: Path, n: int = 600) -> tuple[dict[bytes, bytes], bytes, list[StateChunk]]:
    rng = random.Random(n)
    state = {b"acct/%d" % rng.randrange(10**9): rng.randbytes(24) for _ in range(n)}
    with ZapDB.open(tmp / "src", map_size=1 << 26) as src:
        bulk.bulk_load(src, state.items())
        with src.read() as view:
            return state, src.root(), [view.chunk(DEPTH, i) for i in range(1 << DEPTH)]


def _expected(state: dict[bytes, bytes]) -> dict[bytes, bytes]:
    store = DictNodeStore()
    apply_updates_py(store, state.items())
    return {k: v for k, v in store.nodes.items() if v is not None}


def _stored(db: ZapDB) -> dict[bytes, bytes]:
    with db._env.begin() as txn:
        return dict(txn.cursor(db=db._dbs[1]).iternext())


def _half_loaded(db: ZapDB, root: bytes, chunks: list[StateChunk]) -> tuple[Txn, bulk.ChunkLoader]:
    """A load with the first half of the chunks in: some records written early."""
    txn = db.begin()
    loader = bulk.ChunkLoader(txn, root, DEPTH)
    assert all(loader.add_many(chunks[: len(chunks) // 2]))
    assert db._early is not None and db._early.owner == txn._serial
    return txn, loader


def test_the_commit_finishes_the_early_txn(tmp_path: Path) -> None:
    state, root, chunks = _source(tmp_path)
    with ZapDB.open(tmp_path / "dst", map_size=1 << 26) as db:
        txn, loader = _half_loaded(db, root, chunks)
        assert _stored(db) == {}  # not visible before the commit
        assert all(loader.add_many(chunks[len(chunks) // 2 :]))
        assert loader.finish() == root and txn.commit() == root
        assert db._early is None and _stored(db) == _expected(state)
    with ZapDB.open(tmp_path / "dst", map_size=1 << 26) as db:  # the open checks tree == root
        assert db.root() == root and db.version == 1


@pytest.mark.parametrize("end", ["discard", "close", "finish_fails"])
def test_an_unfinished_load_leaves_nothing(tmp_path: Path, end: str) -> None:
    _, root, chunks = _source(tmp_path)
    db = ZapDB.open(tmp_path / "dst", map_size=1 << 26)
    txn, _ = _half_loaded(db, root, chunks)
    if end == "discard":
        txn.discard()
        txn.discard()  # idempotent
    elif end == "close":
        db.close()
        db = ZapDB.open(tmp_path / "dst", map_size=1 << 26)
    else:
        with pytest.raises(StoreError):
            txn.commit()  # nothing installed: the loader never finished; the txn is discarded
    assert db._early is None and db.root() == EMPTY and _stored(db) == {}
    with db.begin() as other:  # the store takes commits again
        other.set(b"k", b"v")
        other.commit()
    assert db.version == 1
    db.close()


def test_no_other_commit_while_a_load_holds_the_write_txn(tmp_path: Path) -> None:
    _, root, chunks = _source(tmp_path)
    with ZapDB.open(tmp_path / "dst", map_size=1 << 26) as db:
        other = db.begin()
        txn, loader = _half_loaded(db, root, chunks)
        other.set(b"k", b"v")
        with pytest.raises(ConflictError):
            other.commit()
        again = db.begin()
        with pytest.raises(ConflictError):
            bulk.ChunkLoader(again, root, DEPTH).add_many(chunks[:1])  # a second load's early write
        again.discard()
        assert all(loader.add_many(chunks[len(chunks) // 2 :]))
        loader.finish()
        assert txn.commit() == root == db.root()


def _on_thread(fn: Callable[[], object]) -> BaseException | None:
    box: list[BaseException | None] = [None]

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed back to the test
            box[0] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return box[0]


def test_the_write_txn_is_used_on_its_own_thread_only(tmp_path: Path) -> None:
    _, root, chunks = _source(tmp_path)
    with ZapDB.open(tmp_path / "dst", map_size=1 << 26) as db:
        txn, loader = _half_loaded(db, root, chunks)
        assert isinstance(_on_thread(lambda: loader.add_many(chunks[4:])), StoreError)
        assert isinstance(_on_thread(db.close), StoreError)  # LMDB would wait on this thread
        assert _on_thread(txn.discard) is None  # discard may come from any thread: it dooms
        early = db._early
        assert early is not None and early.doomed
        with pytest.raises(ConflictError):
            early.check(txn._serial)
        with db.begin() as other:  # the next write on the opening thread aborts it first
            other.set(b"k", b"v")
            other.commit()
        assert db._early is None and db.version == 1


def test_a_failing_early_write_halts_the_store(tmp_path: Path) -> None:
    _, root, chunks = _source(tmp_path, 3000)
    with ZapDB.open(tmp_path / "dst", map_size=1 << 17) as db:  # too small for the records
        txn = db.begin()
        loader = bulk.ChunkLoader(txn, root, DEPTH)
        with pytest.raises(FatalStoreError):
            loader.add_many(chunks)
        assert db.halted and db._early is None
        txn.discard()
    with ZapDB.open(tmp_path / "dst", map_size=1 << 26) as db:
        assert db.root() == EMPTY and _stored(db) == {}


def test_a_store_that_writes_one_by_one_takes_no_early_writes(tmp_path: Path) -> None:
    state, root, chunks = _source(tmp_path)
    unarmed = FailAt()
    unarmed.armed = False
    for opts in ({"fault_injector": unarmed}, {"write_order_seed": 7}):
        path = tmp_path / f"dst{len(opts)}{next(iter(opts))}"
        with ZapDB.open(path, map_size=1 << 26, **opts) as db:
            txn = db.begin()
            assert txn.early_writer() is None
            loader = bulk.ChunkLoader(txn, root, DEPTH)
            assert all(loader.add_many(chunks)) and db._early is None
            loader.finish()
            assert txn.commit() == root and _stored(db) == _expected(state)


def test_early_txn_checks_owner_and_thread() -> None:
    early = EarlyTxn(5, object())
    early.check(5)
    assert early.on_thread() and not early.doomed
    with pytest.raises(ConflictError):
        early.check(6)  # another txn
    assert isinstance(_on_thread(lambda: early.check(5)), StoreError)  # another thread
    seen: list[bool] = []
    assert _on_thread(lambda: seen.append(early.on_thread())) is None and seen == [False]
    assert not early.doomed
    early.doomed = True
    with pytest.raises(ConflictError):
        early.check(5)  # its owner was discarded: it only waits to be aborted
