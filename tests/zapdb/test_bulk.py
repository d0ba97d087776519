"""Bulk paths: bulk_load and state-sync chunk loading give the very records an ordinary
txn commit gives; the upper-tree memo stays equal to LMDB from commit to commit."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from zapstack.errors import LocalProtocolError, StoreError
from zapstack.zapdb import StateChunk, ZapDB, batch, bulk, smt
from zapstack.zapdb.proofs import make_chunk
from zapstack.zapdb.smt import DictNodeStore, apply_updates_py, reference_root


def _state(n: int, seed: int) -> dict[bytes, bytes]:
    rng = random.Random(seed)
    return {b"acct/%d" % rng.randrange(10**9): rng.randbytes(rng.randrange(40)) for _ in range(n)}


def _records(db: ZapDB) -> dict[bytes, bytes]:
    with db._env.begin() as txn:
        return dict(txn.cursor(db=db._dbs[1]).iternext())


def _python_records(state: dict[bytes, bytes]) -> dict[bytes, bytes | None]:
    store = DictNodeStore()
    apply_updates_py(store, state.items())
    return store.nodes


@pytest.mark.parametrize("n", [0, 1, 2, 3, 700])
def test_bulk_load_equals_the_reference_records(tmp_path: Path, n: int) -> None:
    state = _state(n, n)
    with ZapDB.open(tmp_path / "db", map_size=1 << 26) as db:
        assert bulk.bulk_load(db, state.items()) == reference_root(state) == db.root()
        assert _records(db) == _python_records(state)
        with db.read() as view:
            assert dict(view.iterate()) == state and view.tree_root() == db.root()
        with pytest.raises(StoreError) if n else pytest.raises(LocalProtocolError):
            bulk.bulk_load(db, [(b"", b"x")] if not n else state.items())


@pytest.mark.parametrize("depth", [0, 1, 4, 9])
def test_chunk_loader_rebuilds_the_source_records(tmp_path: Path, depth: int) -> None:
    state = _state(400, depth)
    src = ZapDB.open(tmp_path / "src", map_size=1 << 26)
    bulk.bulk_load(src, state.items())
    root = src.root()
    with src.read() as view:
        chunks = [view.chunk(depth, i) for i in range(1 << depth)]
    order = list(range(1 << depth))
    random.Random(depth).shuffle(order)
    with ZapDB.open(tmp_path / "dst", map_size=1 << 26) as dst:
        txn = dst.begin()
        loader = bulk.ChunkLoader(txn, root, depth)
        for i in order[:-1]:
            assert loader.add(chunks[i])
        if depth:
            with pytest.raises(LocalProtocolError):
                loader.finish()
        assert loader.add(chunks[order[-1]]) and loader.add(chunks[order[0]])  # repeat: ok
        assert loader.finish() == root
        assert txn.commit() == root == dst.root()
        assert _records(dst) == _records(src) == _python_records(state)
        with dst.read() as view:
            assert dict(view.iterate()) == state
    src.close()


def test_chunk_loader_rejects_bad_chunks_and_keeps_nothing(tmp_path: Path) -> None:
    state = _state(200, 5)
    src = ZapDB.open(tmp_path / "src", map_size=1 << 26)
    bulk.bulk_load(src, state.items())
    with src.read() as view:
        good = view.chunk(3, 2)
    entries = good.entries
    bad = [
        StateChunk(3, 2, (*entries[:-1], (entries[-1][0], b"forged")), good.siblings, None),
        StateChunk(3, 2, entries[::-1], good.siblings, None),
        StateChunk(3, 2, entries[1:], good.siblings, None),
        StateChunk(3, 2, entries, (bytes(32), *good.siblings[1:]), None),
        StateChunk(4, 4, entries, good.siblings, None),
    ]
    with ZapDB.open(tmp_path / "dst", map_size=1 << 26) as dst:
        txn = dst.begin()
        loader = bulk.ChunkLoader(txn, src.root(), 3)
        for chunk in bad:
            assert not loader.add(chunk)
        assert loader._tops == {} and loader._entries == {} and loader._early == {}
        assert loader._nodes == {smt.ROOT_PATH: None} and loader._slots == []
        assert loader.add(good)
        txn.discard()
        with dst.begin() as other:
            other.set(b"x", b"y")
            other.commit()
        with pytest.raises(StoreError):
            bulk.ChunkLoader(dst.begin(), src.root(), 3)
    src.close()


def test_snapshot_chunk_scan_equals_the_tree_walk(tmp_path: Path) -> None:
    state = _state(300, 9)
    with ZapDB.open(tmp_path / "db", map_size=1 << 26) as db:
        bulk.bulk_load(db, state.items())
        store = DictNodeStore()
        store.nodes = dict(_records(db))  # not a LeafScanner: the recursive walk
        with db.read() as view:
            for depth, index in [(0, 0), (2, 1), (5, 17), (12, 4095)]:
                want = make_chunk(store, state.get, depth, index)
                assert view.chunk(depth, index) == want
                snap, prefix = view._s(), index << (256 - depth)
                assert snap.entries_under(depth, prefix) == snap.entries_under_py(depth, prefix)


def test_upper_memo_matches_lmdb_block_after_block(tmp_path: Path) -> None:
    rng = random.Random(11)
    state = _state(3000, 11)
    with ZapDB.open(tmp_path / "db", map_size=1 << 27) as db:
        bulk.bulk_load(db, state.items())
        keys = list(state)
        for _ in range(6):
            txn = db.begin()
            for _ in range(60):
                key = rng.choice(keys) if rng.random() < 0.7 else b"new/%d" % rng.randrange(10**6)
                if rng.random() < 0.2:
                    txn.delete(key)
                    state.pop(key, None)
                else:
                    value = rng.randbytes(8)
                    txn.set(key, value)
                    state[key] = value
            keys = list(state)
            assert txn.commit() == reference_root(state)
            with db.read() as view:
                snap = view._s()
                assert snap.split > 0 and snap.upper  # carried and warm
                for path, rec in snap.upper.items():
                    assert snap.get_node(path) == rec


def test_fallback_without_the_extension_gives_the_same_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zapstack.zapdb import batch

    state = _state(250, 21)
    monkeypatch.setattr(batch, "FAST", False)
    monkeypatch.setattr(smt, "FAST", False)
    with ZapDB.open(tmp_path / "a", map_size=1 << 26) as db:
        assert bulk.bulk_load(db, state.items()) == reference_root(state)
        with db.read() as view:
            chunks = [view.chunk(2, i) for i in range(4)]
        with ZapDB.open(tmp_path / "b", map_size=1 << 26) as dst:
            txn = dst.begin()
            loader = bulk.ChunkLoader(txn, db.root(), 2)
            assert all(loader.add(c) for c in chunks[::-1])
            assert loader.finish() == db.root() == txn.commit()
            assert _records(dst) == _records(db) == _python_records(state)


def test_upper_memo_of_a_snapshot_still_held_is_not_changed_by_a_commit(tmp_path: Path) -> None:
    state = _state(3000, 12)
    with ZapDB.open(tmp_path / "db", map_size=1 << 27) as db:
        bulk.bulk_load(db, state.items())
        keys = sorted(state)
        for step in range(3):
            held = db.begin()  # a second user of the head snapshot: the memo must be copied
            held.set(b"probe", b"%d" % step)
            before = held.root()
            work = db.begin()
            for key in keys[step * 50 : step * 50 + 50]:
                work.set(key, b"changed")
                state[key] = b"changed"
            assert work.commit() == reference_root(state)
            snap = held._base
            for path, rec in snap.upper.items():
                assert snap.get_node(path) == rec  # still the old version's records
            held.set(b"probe2", b"x")
            held.delete(b"probe2")
            assert held.root() == before
            held.discard()
        with db.read() as view:  # and the new head's memo (taken in place or copied) is right
            view_snap = view._s()
            for path, rec in view_snap.upper.items():
                assert view_snap.get_node(path) == rec


@pytest.mark.parametrize(("depth", "shuffle"), [(0, False), (3, False), (3, True), (6, True)])
def test_loader_hands_the_commit_its_records_ascending(
    tmp_path: Path, depth: int, shuffle: bool
) -> None:
    state = _state(500, depth + 7)
    with ZapDB.open(tmp_path / "src", map_size=1 << 26) as src:
        bulk.bulk_load(src, state.items())
        root = src.root()
        with src.read() as view:
            chunks = [view.chunk(depth, i) for i in range(1 << depth)]
    if shuffle:
        random.Random(depth).shuffle(chunks)
    bad = StateChunk(depth, chunks[0].index, chunks[0].entries[1:], chunks[0].siblings, None)
    with ZapDB.open(tmp_path / "dst", map_size=1 << 26) as dst:
        txn = dst.begin()
        loader = bulk.ChunkLoader(txn, root, depth)
        assert not loader.add(bad)  # a failing chunk leaves nothing behind
        for chunk in chunks:
            assert loader.add(chunk)
        assert loader.finish() == root
        nodes = txn._live().nodes
        assert list(nodes) == sorted(nodes)
        assert nodes == _python_records(state)
        assert txn.commit() == root == reference_root(state)


def test_warm_upper_holds_every_record_above_split(tmp_path: Path) -> None:
    state = _state(5000, 21)
    with ZapDB.open(tmp_path / "db", map_size=1 << 27) as db:
        bulk.bulk_load(db, state.items())
        records = _records(db)
        for warm in ("warm_upper", "warm_upper_py"):
            with db.read() as view:
                snap = view._s()
                snap.upper, snap.warm = batch.new_memo(), False
                getattr(snap, warm)()
                assert snap.split == 10 and snap.warm  # bit_length(5000) - 3
                want = {k: v for k, v in records.items() if k[32] < snap.split}
                assert {k: v for k, v in snap.upper.items() if v is not None} == want
                assert all(k not in records for k, v in snap.upper.items() if v is None)
