"""The py-lmdb bridge (zapdb/lmdbfast.py, _smtfast_lmdb.h) is py-lmdb's own putmulti and
getmulti: the same records, results and exceptions, and py-lmdb's other cursors stay right."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.zapdb import ZapDB, batch, bulk, lmdbfast, smt

needs_bridge = pytest.mark.skipif(not lmdbfast.BRIDGED, reason="the C bridge is not bound")

Pairs = list[tuple[bytes, bytes]]


@contextmanager
def _env(path: Path, map_size: int = 1 << 26) -> Iterator[lmdb.Environment]:
    env = lmdb.open(str(path), map_size=map_size, max_dbs=2, sync=False, metasync=False)
    try:
        yield env
    finally:
        env.close()


def _put(
    path: Path, base: Pairs, items: Pairs, append: bool, bridged: bool, map_size: int = 1 << 26
) -> tuple[Any, Pairs]:
    """(result or exception class, records after) of one putmulti onto ``base``."""
    with _env(path, map_size) as env:
        db = env.open_db(b"t")
        with env.begin(write=True, db=db) as txn:
            txn.cursor().putmulti(base)
        try:
            with (
                env.begin(write=True, db=db) as txn,
                mock.patch.object(lmdbfast, "BRIDGED", bridged),
            ):
                cur = txn.cursor()
                result: Any = lmdbfast.putmulti(cur, items, append)
                cur.close()
        except (lmdb.Error, TypeError) as exc:
            result = type(exc)
        with env.begin(db=db) as txn:
            return result, list(txn.cursor().iternext())


keys = st.binary(min_size=1, max_size=12)
pairs = st.lists(st.tuples(keys, st.binary(max_size=40)), max_size=40)


def test_the_bridge_is_bound_on_the_pinned_lmdb() -> None:
    """The pinned lmdb with the C extension built binds: a changed py-lmdb fails this (check
    the mirror in _smtfast_lmdb.h against its cpython.c) rather than going slow unseen."""
    if not batch.FAST:
        pytest.skip("the C extension is not built")
    assert lmdb.__version__ == "3.0.0"
    assert lmdbfast.BRIDGED


@needs_bridge
@settings(max_examples=60, deadline=None)
@given(base=pairs, items=pairs, append=st.booleans())
def test_putmulti_is_py_lmdbs(base: Pairs, items: Pairs, append: bool) -> None:
    base = sorted(dict(base).items())
    with tempfile.TemporaryDirectory() as d:
        fast = _put(Path(d) / "fast", base, items, append, True)
        slow = _put(Path(d) / "slow", base, items, append, False)
    assert fast == slow


@needs_bridge
@settings(max_examples=60, deadline=None)
@given(stored=pairs, asked=st.lists(keys, max_size=30))
def test_getmulti_is_py_lmdbs(
    tmp_path_factory: pytest.TempPathFactory, stored: Pairs, asked: list[bytes]
) -> None:
    stored = sorted(dict(stored).items())
    asked += [k for k, _ in stored[:5]]
    with _env(tmp_path_factory.mktemp("get")) as env:
        with env.begin(write=True) as txn:
            txn.cursor().putmulti(stored)
        with env.begin() as txn:
            got, size = lmdbfast.getmulti_sized(txn.cursor(), asked)
            assert got == txn.cursor().getmulti(asked)
            assert size == sum(len(v) for _, v in got)
            assert lmdbfast.getmulti(txn.cursor(), [memoryview(k) for k in asked]) == got


@needs_bridge
def test_lmdb_errors_are_py_lmdbs(tmp_path: Path) -> None:
    """A full map and a read-only txn raise py-lmdb's classes, a closed cursor py-lmdb's own
    error (the bridge hands it back to py-lmdb)."""
    big = [(b"%08d" % i, bytes(2000)) for i in range(5000)]
    for bridged in (True, False):
        result, _ = _put(tmp_path / f"full{bridged}", [], big, True, bridged, 1 << 20)
        assert result is lmdb.MapFullError
    with _env(tmp_path / "ro") as env:
        with env.begin() as txn:
            with pytest.raises(lmdb.ReadonlyError):
                lmdbfast.putmulti(txn.cursor(), [(b"a", b"1")], False)
            with pytest.raises(lmdb.ReadonlyError):
                txn.cursor().putmulti([(b"a", b"1")])
        with env.begin(write=True) as txn:
            cur = txn.cursor()
            cur.close()
            with pytest.raises(lmdb.Error):
                lmdbfast.putmulti(cur, [(b"a", b"1")], False)
            with pytest.raises(lmdb.Error):
                lmdbfast.getmulti(cur, [b"a"])


@needs_bridge
def test_a_bad_item_is_refused_as_py_lmdb_refuses_it(tmp_path: Path) -> None:
    for bad in ([(b"a", b"1"), "no pair"], [(b"a", b"1"), (b"b", 2)], [(b"a", b"1", b"x")]):
        for bridged in (True, False):
            result, after = _put(tmp_path / f"bad{bridged}", [], bad, False, bridged)  # type: ignore[arg-type]
            assert (result, after) == (TypeError, []), (bad, bridged)


@needs_bridge
def test_other_cursors_see_the_bridged_writes(tmp_path: Path) -> None:
    """py-lmdb caches a cursor's key and value; a bridged put tells every cursor of the txn
    that the records changed, as py-lmdb's own put does, so they re-read them."""
    with _env(tmp_path / "db") as env, env.begin(write=True) as txn:
        txn.put(b"m", b"1")
        other = txn.cursor()
        assert other.set_key(b"m")
        cur = txn.cursor()
        assert lmdbfast.putmulti(cur, [(b"a", b"x" * 3000), (b"b", b"y" * 3000)], False) == (2, 2)
        assert (other.key(), other.value()) == (b"m", b"1")
        assert other.prev() and other.key() == b"b"


@needs_bridge
def test_the_getter_is_cursor_get(tmp_path: Path) -> None:
    """lmdbfast.getter(cursor) answers as cursor.get (bytes, None, buffers as keys), and
    py-lmdb's own error once the cursor is closed."""
    with _env(tmp_path / "db") as env, env.begin(write=True) as txn:
        txn.put(b"a", b"1")
        txn.put(b"c", b"3" * 5000)
        cur = txn.cursor()
        for nogil in (False, True):  # nogil: each lookup lets other threads run
            get = lmdbfast.getter(cur, nogil)
            assert type(get).__name__ == "LmdbGetter"
            for key in (b"a", b"b", b"c", memoryview(b"c"), b"zz"):
                assert get(key) == txn.cursor().get(bytes(key))
        assert cur.set_key(b"a") and cur.value() == b"1"  # py-lmdb's view re-reads
        cur.close()
        with pytest.raises(lmdb.Error):
            get(b"a")
    with pytest.raises(TypeError):
        get()  # type: ignore[call-arg]


def test_block_roots_are_the_same_bridged_or_not(tmp_path: Path) -> None:
    """A block's root reads its tree records through the getter (from C, in place): blocks
    of updates and deletes give the reference root either way."""
    state = {b"k%05d" % i: b"v%d" % i for i in range(4000)}
    for bridged in (True, False):
        with mock.patch.object(lmdbfast, "BRIDGED", bridged and lmdbfast.BRIDGED):
            now = dict(state)
            with ZapDB.open(tmp_path / f"db{bridged}", map_size=1 << 27) as db:
                bulk.bulk_load(db, now.items())
                for block in range(3):
                    txn = db.begin()
                    for i in range(block, 4000, 37):
                        key = b"k%05d" % i
                        if i % 2:
                            txn.delete(key)
                            now.pop(key, None)
                        else:
                            txn.set(key, b"new%d" % block)
                            now[key] = b"new%d" % block
                    assert txn.commit() == smt.reference_root(now)


def test_bind_refuses_a_layout_it_does_not_know() -> None:
    if not batch.FAST:
        pytest.skip("the C extension is not built")
    from zapstack.zapdb import _smtfast

    try:
        assert not _smtfast.lmdb_bind(lmdb.Cursor, lmdb.Transaction, "3.0.1", lmdb.Error)
        assert not _smtfast.lmdb_bind(lmdb.Transaction, lmdb.Cursor, "3.0.0", lmdb.Error)
        assert not _smtfast.lmdb_bind(int, float, "3.0.0", lmdb.Error)
        assert _smtfast.lmdb_putmulti(object(), [], False) is None  # unbound: py-lmdb's turn
    finally:
        assert (
            _smtfast.lmdb_bind(lmdb.Cursor, lmdb.Transaction, lmdb.__version__, lmdb.Error)
            == lmdbfast.BRIDGED
        )


def test_the_environment_switch_turns_the_bridge_off() -> None:
    code = "from zapstack.zapdb import lmdbfast; print(lmdbfast.BRIDGED)"
    env = {**os.environ, "ZAPSTACK_LMDB_BRIDGE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


@needs_bridge
def test_served_chunks_are_the_same_bridged_or_not(tmp_path: Path) -> None:
    """entries_under reads the subtree in place through the bridge: every chunk, whole and
    under budgets that stop the walk, equals py-lmdb's iterator and the Python reference."""
    state = {b"k%05d" % i: b"v" * (i % 50) for i in range(3000)}
    with ZapDB.open(tmp_path / "db", map_size=1 << 27) as db:
        bulk.bulk_load(db, state.items())
        with db.read() as view:
            snap = view._s()
            for depth, index in [(0, 0), (3, 5)] + [(6, i) for i in range(64)]:
                prefix = index << (256 - depth)  # the chunk's path: bits depth..255 clear
                for budget in (None, 40_000, 300):
                    fast = snap.entries_under(depth, prefix, budget, 6)
                    with mock.patch.object(lmdbfast, "BRIDGED", False):
                        slow = snap.entries_under(depth, prefix, budget, 6)
                    assert fast == slow
                    if budget is None:
                        assert fast == snap.entries_under_py(depth, prefix)
    assert smt.reference_root(state) == db_root(tmp_path / "db")


@needs_bridge
@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(0, 3000),
    seed=st.integers(0, 2**32),
    depth=st.integers(0, 7),
    budget=st.one_of(st.none(), st.integers(0, 60_000)),
)
def test_any_chunk_is_served_the_same_bridged_or_not(
    size: int, seed: int, depth: int, budget: int | None
) -> None:
    """Any state (up to 3000 keys: subtrees past one 256-record read), depth and budget:
    the bridged walk (reading at most the records still due, 256 at a time) and values
    give py-lmdb's answer for every chunk."""
    rng = random.Random(seed)
    state = {
        rng.randbytes(rng.randint(1, 12)): rng.randbytes(rng.randint(0, 300)) for _ in range(size)
    }
    with tempfile.TemporaryDirectory() as d, ZapDB.open(Path(d) / "db", map_size=1 << 28) as db:
        bulk.bulk_load(db, state.items())
        with db.read() as view:
            snap = view._s()
            for index in range(1 << depth):
                prefix = index << (256 - depth)
                fast = snap.entries_under(depth, prefix, budget, 6)
                with mock.patch.object(lmdbfast, "BRIDGED", False):
                    assert fast == snap.entries_under(depth, prefix, budget, 6)
                if budget is None:
                    assert fast == snap.entries_under_py(depth, prefix)


@needs_bridge
def test_chunks_served_on_threads_during_commits_are_exact(tmp_path: Path) -> None:
    """Served chunk reads release the GIL (nogil batches, under the snapshot's lock): two
    threads serving two snapshots while the main thread commits blocks still answer
    every chunk exactly as the reference walk does, and the store stays consistent."""
    import threading

    state = {b"k%05d" % i: b"v" * (i % 300) for i in range(6000)}
    failures: list[str] = []
    with ZapDB.open(tmp_path / "db", map_size=1 << 28) as db:
        bulk.bulk_load(db, state.items())

        def serve(rounds: int) -> None:
            with db.read() as view:
                snap = view._s()
                chunks = [i << (256 - 5) for i in range(32)]
                expected = [snap.entries_under_py(5, prefix) for prefix in chunks]
                for r in range(rounds):
                    for i, prefix in enumerate(chunks):
                        if snap.entries_under(5, prefix, 1 << 24, 6) != expected[i]:
                            failures.append(f"round {r} chunk {i}")

        threads = [threading.Thread(target=serve, args=(6,)) for _ in range(2)]
        for t in threads:
            t.start()
        for block in range(20):
            txn = db.begin()
            for i in range(block, 6000, 97):
                txn.set(b"k%05d" % i, b"b%d" % block)
                state[b"k%05d" % i] = b"b%d" % block
            assert txn.commit() == smt.reference_root(state)
        for t in threads:
            t.join()
    assert failures == []


def db_root(path: Path) -> bytes:
    with ZapDB.open(path, map_size=1 << 27) as db:
        return db.root()
