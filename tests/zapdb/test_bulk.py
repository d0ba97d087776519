"""Bulk paths: bulk_load and state-sync chunk loading give the very records an ordinary
txn commit gives; the upper-tree memo stays equal to LMDB from commit to commit."""

from __future__ import annotations

import hashlib
import itertools
import random
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.errors import LocalProtocolError, StoreError
from zapstack.zapdb import StateChunk, ZapDB, batch, bulk, smt
from zapstack.zapdb import view as viewmod
from zapstack.zapdb.proofs import ENTRY_OVERHEAD, ChunkTooLarge, body_len, make_chunk, verify_chunk
from zapstack.zapdb.smt import DictNodeStore, apply_updates_py, reference_root


def _state(n: int, seed: int) -> dict[bytes, bytes]:
    rng = random.Random(seed)
    return {b"acct/%d" % rng.randrange(10**9): rng.randbytes(rng.randrange(40)) for _ in range(n)}


def _records(db: ZapDB) -> dict[bytes, bytes]:
    with db._env.begin() as txn:
        return dict(txn.cursor(db=db._dbs[1]).iternext())


def _records_in_txn(db: ZapDB) -> dict[bytes, bytes]:
    """The tree records written so far into the store's open early LMDB txn (none: {})."""
    if db._early is None:
        return {}
    return {bytes(k): bytes(v) for k, v in db._early.txn.cursor(db=db._dbs[1]).iternext()}


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
        chunks = [view.chunk(3, i) for i in range(8)]
    good = chunks[2]
    entries = good.entries
    bad = [
        StateChunk(3, 2, (*entries[:-1], (entries[-1][0], b"forged")), good.siblings, None),
        StateChunk(3, 2, entries[::-1], good.siblings, None),
        StateChunk(3, 2, entries[1:], good.siblings, None),
        StateChunk(3, 2, entries, (bytes(32), *good.siblings[1:]), None),
        StateChunk(4, 4, entries, good.siblings, None),
        StateChunk(3, 8, entries, good.siblings, None),
        StateChunk(3, -1, entries, good.siblings, None),
    ]
    with ZapDB.open(tmp_path / "dst", map_size=1 << 26) as dst:
        txn = dst.begin()
        loader = bulk.ChunkLoader(txn, src.root(), 3)
        for chunk in bad:
            assert not loader.add(chunk)
        assert all(loader.add(chunk) for chunk in chunks)
        assert loader.finish() == src.root() == txn.commit()  # nothing of the bad ones kept
        assert _records(dst) == _records(src)
        with dst.read() as view:
            assert dict(view.iterate()) == state
    with ZapDB.open(tmp_path / "dst2", map_size=1 << 26) as dst:
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
            snap = view._s()
            for depth in range(8):  # every subtree, the empty and the lone-leaf ones included
                for index in range(1 << depth):
                    prefix = index << (256 - depth)
                    fast, slow = (
                        snap.entries_under(depth, prefix),
                        snap.entries_under_py(depth, prefix),
                    )
                    assert fast == slow


def test_a_bounded_chunk_scan_stops_at_its_budget(tmp_path: Path) -> None:
    """entries_under with a budget == the readable scan's verdict: the entries when their
    ``ENTRY_OVERHEAD + len(key) + len(value)`` fit, else None; make_chunk with a limit
    raises ChunkTooLarge exactly when the chunk's body would pass it (both sides of it)."""
    state = _state(2000, 21)
    rng = random.Random(21)
    with ZapDB.open(tmp_path / "db", map_size=1 << 27) as db:
        bulk.bulk_load(db, state.items())
        store = DictNodeStore()
        store.nodes = dict(_records(db))
        with db.read() as view, mock.patch.object(viewmod, "_VALUE_SLICE", 7):  # many slices
            snap = view._s()
            for depth in range(4):
                for index in range(1 << depth):
                    prefix = index << (256 - depth)
                    full = snap.entries_under_py(depth, prefix)
                    assert full is not None
                    keys = sum(ENTRY_OVERHEAD + len(k) for k, _ in full)
                    size = keys + sum(len(v) for _, v in full)
                    for budget in {
                        0,
                        keys - 1,
                        keys,
                        size - 1,
                        size,
                        size + 1,
                        rng.randrange(size),
                    }:
                        want = full if size <= budget else None
                        assert snap.entries_under(depth, prefix, budget, ENTRY_OVERHEAD) == want
                        assert snap.entries_under_py(depth, prefix, budget, ENTRY_OVERHEAD) == want
                    chunk = make_chunk(store, state.get, depth, index)  # the recursive walk
                    need = body_len(chunk)
                    assert view.chunk(depth, index, need) == chunk
                    assert make_chunk(store, state.get, depth, index, limit=need) == chunk
                    for limit in (need - 1, 0):
                        with pytest.raises(ChunkTooLarge) as err:
                            view.chunk(depth, index, limit)
                        assert (err.value.depth, err.value.index, err.value.limit) == (
                            depth,
                            index,
                            limit,
                        )
                        with pytest.raises(ChunkTooLarge):
                            make_chunk(store, state.get, depth, index, limit=limit)
            lone = next(  # a lone-leaf chunk (the walk stops above its depth)
                c
                for d in range(8, 14)
                for i in range(1 << d)
                if len((c := view.chunk(d, i)).entries) == 1 and c.terminal
            )
            need = body_len(lone)
            assert view.chunk(lone.depth, lone.index, need) == lone
            with pytest.raises(ChunkTooLarge):
                view.chunk(lone.depth, lone.index, need - 1)


def test_a_bounded_chunk_scan_reads_about_its_budget(tmp_path: Path) -> None:
    """A chunk over its budget costs the server about the budget, not the subtree: the walk
    stops at the leaf that passes it (counted: the records pulled from the cursor)."""
    state = _state(3000, 22)
    pulled: list[int] = []
    real = viewmod._smtfast

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        @staticmethod
        def subtree_keys(run: object, *args: object) -> bool:
            seen = [0]

            def counted() -> object:
                records = run.iternext(keys=False) if hasattr(run, "iternext") else run
                for rec in records:  # type: ignore[attr-defined]
                    seen[0] += 1
                    yield rec

            try:
                return bool(real.subtree_keys(counted(), *args))
            finally:
                pulled.append(seen[0])

    with ZapDB.open(tmp_path / "db", map_size=1 << 27) as db:
        bulk.bulk_load(db, state.items())
        with db.read() as view, mock.patch.object(viewmod, "_smtfast", Counting()):
            assert view._s().entries_under(0, 0, 600, ENTRY_OVERHEAD) is None
            assert view._s().entries_under(0, 0) is not None
    bounded, whole = pulled
    assert whole > 3000 and bounded < 50 * 6  # 600 bytes: at most 50 leaves of >= 12 bytes


def test_chunk_scan_of_a_corrupt_store_is_a_store_error(tmp_path: Path) -> None:
    state = _state(200, 13)
    with ZapDB.open(tmp_path / "db", map_size=1 << 26) as db:
        bulk.bulk_load(db, state.items())
        records = _records(db)
        leaf = next(k for k, r in records.items() if r[0] == smt.LEAF_TAG and k[32] >= 3)
        with db._env.begin(write=True) as txn:  # a leaf's value goes missing
            txn.delete(records[leaf][65:], db=db._dbs[0])
        with db.read() as view:
            snap, prefix = view._s(), int.from_bytes(leaf[:32], "big") >> 253 << 253
            with pytest.raises(StoreError):
                snap.entries_under(3, prefix)
        top = smt.path_key(prefix, 3)
        with db._env.begin(write=True) as txn:  # a record that is neither tag
            txn.put(top, b"\x07" + bytes(64), db=db._dbs[1])
        with db.read() as view, pytest.raises(StoreError):
            view._s().entries_under(3, prefix)


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
        installed = txn._live().installed
        assert installed is not None
        data, nodes = installed
        assert list(nodes) == sorted(nodes) and list(data) == sorted(state)
        assert all(data[k] == v for k, v in state.items()) and len(data) == len(state)
        expected = _python_records(state)
        early = _records_in_txn(dst)  # written as they settled, in the commit's LMDB txn
        assert _records(dst) == {}  # ... which nobody else sees before the commit
        assert not set(early) & set(nodes) and dict(nodes) | early == expected
        assert txn.commit() == root == reference_root(state)
        assert _records(dst) == expected


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


TAMPER = ("value", "drop", "swap", "sibling", "extra", "terminal", "short")


def _tamper(chunk: StateChunk, how: str, other: StateChunk) -> StateChunk:
    """``chunk`` broken one way (some ways leave a chunk that is still valid: the
    reference verdict decides)."""
    entries, sibs, term = chunk.entries, chunk.siblings, chunk.terminal
    if how == "value" and entries:
        entries = (*entries[:-1], (entries[-1][0], entries[-1][1] + b"!"))
    elif how == "drop":
        entries = entries[1:]
    elif how == "swap":
        entries = entries[::-1]
    elif how == "sibling" and sibs:
        sibs = (bytes([sibs[0][0] ^ 1]) + sibs[0][1:], *sibs[1:])
    elif how == "extra":
        entries = (*entries, *other.entries[:1])
    elif how == "terminal":
        term = bytes(64)
    elif how == "short" and sibs:
        sibs = sibs[:-1]
    return StateChunk(chunk.depth, chunk.index, entries, sibs, term)


def _sync(
    root: bytes, depth: int, feed: list[StateChunk], cuts: list[int] | None = None
) -> tuple[list[bool], dict, dict, bytes]:
    """Feed ``feed`` to a ChunkLoader over a fresh store: (verdicts, records, data, root);
    one ``add`` per chunk, or ``add_many`` per batch when ``cuts`` splits the feed."""
    with tempfile.TemporaryDirectory() as tmp, ZapDB.open(Path(tmp), map_size=1 << 26) as dst:
        txn = dst.begin()
        loader = bulk.ChunkLoader(txn, root, depth)
        if cuts is None:
            verdicts = [loader.add(chunk) for chunk in feed]
        else:
            bounds = [0, *sorted(c % (len(feed) + 1) for c in cuts), len(feed)]
            verdicts = []
            for lo, hi in itertools.pairwise(bounds):
                verdicts += loader.add_many(feed[lo:hi])
        assert loader.finish() == root == txn.commit() == dst.root()
        with dst.read() as view:
            return verdicts, _records(dst), dict(view.iterate()), view.tree_root()


STATES = st.dictionaries(st.binary(min_size=1, max_size=24), st.binary(max_size=40), max_size=60)
TAMPERS = st.lists(st.tuples(st.sampled_from(TAMPER), st.integers(0, 63)), max_size=4)


def _feed(
    state: dict[bytes, bytes], depth: int, rng: random.Random, tampers: list[tuple[str, int]]
) -> tuple[DictNodeStore, bytes, list[StateChunk]]:
    """(the tree, its root, every chunk of ``depth`` plus 2 repeats and the tampered ones,
    shuffled)."""
    store = DictNodeStore()
    root = apply_updates_py(store, state.items())
    chunks = [make_chunk(store, state.get, depth, i) for i in range(1 << depth)]
    feed = chunks + [rng.choice(chunks) for _ in range(2)]
    for how, i in tampers:
        chunk = chunks[i % len(chunks)]
        feed.append(_tamper(chunk, how, chunks[(i + 1) % len(chunks)]))
    rng.shuffle(feed)
    return store, root, feed


@settings(max_examples=40, deadline=None)
@given(STATES, st.integers(0, 6), st.randoms(use_true_random=False), TAMPERS)
def test_fast_loader_equals_verify_chunk_and_the_fallback(
    state: dict[bytes, bytes], depth: int, rng: random.Random, tampers: list[tuple[str, int]]
) -> None:
    """Random states, every depth 0..6, chunks out of order with repeats and tampered ones:
    the C loader takes exactly the chunks verify_chunk accepts, keeps nothing of a rejected
    one, and leaves the very store the fallback (verify_chunk + txn writes) leaves."""
    store, root, feed = _feed(state, depth, rng, tampers)
    want = [verify_chunk(root, chunk) for chunk in feed]
    fast = _sync(root, depth, feed)
    with mock.patch.object(batch, "FAST", False), mock.patch.object(smt, "FAST", False):
        slow = _sync(root, depth, feed)
    assert fast[0] == slow[0] == want
    assert fast[1] == slow[1] == dict(store.nodes)
    assert fast[2] == slow[2] == state
    assert fast[3] == root == reference_root(state)


@settings(max_examples=40, deadline=None)
@given(
    STATES,
    st.integers(0, 6),
    st.randoms(use_true_random=False),
    TAMPERS,
    st.lists(st.integers(0, 200), max_size=5),
)
def test_add_many_equals_add_one_by_one(
    state: dict[bytes, bytes],
    depth: int,
    rng: random.Random,
    tampers: list[tuple[str, int]],
    cuts: list[int],
) -> None:
    """The same feed (out of order, repeats -- in one batch too --, tampered chunks) cut
    into random batches for add_many (checked on two threads) gives add's verdicts, one
    chunk at a time, and the very same store."""
    _, root, feed = _feed(state, depth, rng, tampers)
    one = _sync(root, depth, feed)
    many = _sync(root, depth, feed, cuts)
    assert many == one
    assert many[0] == [verify_chunk(root, chunk) for chunk in feed]


def test_add_many_refuses_bad_arguments_and_keeps_nothing() -> None:
    from zapstack.zapdb import _smtfast

    state = _state(40, 5)
    store = DictNodeStore()
    root = apply_updates_py(store, state.items())
    chunks = [make_chunk(store, state.get, 2, i) for i in range(4)]
    items = [(c.index, c.entries, c.siblings) for c in chunks]
    loader = _smtfast.SyncLoader(root, 2)
    for bad, error in [
        ([items[0], items[0]], ValueError),  # an index twice in one batch
        ([items[1], (9, items[0][1], items[0][2])], ValueError),  # out of range
        ([items[1], (2, ((b"k", "v"),), items[2][2])], TypeError),  # not (bytes, bytes)
        ([items[1], (2, items[2][1], ("x", b"y"))], TypeError),  # siblings not bytes
        ([items[1], [2, items[2][1], items[2][2]]], TypeError),  # not a tuple
    ]:
        with pytest.raises(error):
            loader.add_many(bad)
    assert loader.add_many([]) == []
    assert loader.add_many(items[:3]) == [True, True, True]  # nothing was kept before
    with pytest.raises(ValueError):
        loader.add_many([items[0]])  # kept already
    short = (3, items[3][1], items[3][2][:1])  # a sibling missing: rejected, not an error
    assert loader.add_many([short, items[3]][:1]) == [False]
    assert loader.add_many([items[3]]) == [True]
    assert loader.finish() == root


def test_installed_records_are_a_read_only_sorted_mapping(tmp_path: Path) -> None:
    state = _state(300, 31)
    store = DictNodeStore()
    root = apply_updates_py(store, state.items())
    with ZapDB.open(tmp_path / "db", map_size=1 << 26) as db:
        txn = db.begin()
        loader = bulk.ChunkLoader(txn, root, 4)
        assert all(loader.add(make_chunk(store, state.get, 4, i)) for i in range(16))
        loader.finish()
        some = sorted(state)[7]
        assert txn.get(some) == state[some] and txn.get(b"absent") is None
        assert dict(txn.iterate(b"acct/")) == state
        with pytest.raises(LocalProtocolError):
            txn.set(b"k", b"v")  # an installed state takes no writes
        installed = txn._live().installed
        assert installed is not None
        data, nodes = installed
        assert dict(data.items()) == state  # the settled tree records went in early:
        assert dict(nodes.items()) | _records_in_txn(db) == store.nodes
        assert len(nodes) < len(store.nodes) and all(nodes[k] == store.nodes[k] for k in nodes)
        assert nodes.get(b"\xff" * 33) is None and b"absent" not in data
        branch = db.snapshot()
        branch.discard()
        assert txn.commit() == root


def test_sync_loader_refuses_misuse() -> None:
    from zapstack.zapdb import _smtfast

    with pytest.raises(ValueError):
        _smtfast.SyncLoader(bytes(31), 2)
    with pytest.raises(ValueError):
        _smtfast.SyncLoader(bytes(32), 25)
    loader = _smtfast.SyncLoader(bytes(32), 1)
    with pytest.raises(ValueError):
        loader.records(0)  # before finish
    with pytest.raises(ValueError):
        loader.finish()  # chunks missing
    with pytest.raises(TypeError):
        loader.add(0, ((b"k", 1),), (bytes(32),))
    with pytest.raises(TypeError):
        loader.add(0, (), (memoryview(bytes(32)),))
    assert not loader.add(0, (), (bytes(31),))
    with pytest.raises(ValueError):
        loader.add(2, (), (bytes(32),))  # index out of range
    loader.add_top(0, (), bytes(32), None)
    with pytest.raises(ValueError):
        loader.add_top(0, (), bytes(32), None)  # repeated
    with pytest.raises(ValueError):
        loader.add_top(1, (), bytes(32), b"\x01" + bytes(64))  # not a leaf record
    loader.add_top(1, (), bytes(32), None)
    assert loader.finish() == bytes(32)  # the empty state
    assert loader.count(0) == loader.count(1) == 0 and list(loader.records(1)) == []
    with pytest.raises(ValueError):
        loader.finish()
    with pytest.raises(ValueError):
        loader.add_top(0, (), bytes(32), None)


def test_loader_takes_entries_that_are_not_exact_bytes(tmp_path: Path) -> None:
    state = _state(120, 41)
    store = DictNodeStore()
    root = apply_updates_py(store, state.items())
    chunks = [make_chunk(store, state.get, 2, i) for i in range(4)]
    views = [
        StateChunk(2, c.index, tuple((k, memoryview(v)) for k, v in c.entries), c.siblings, None)
        for c in chunks
    ]
    with ZapDB.open(tmp_path / "db", map_size=1 << 26) as db:
        txn = db.begin()
        loader = bulk.ChunkLoader(txn, root, 2)
        assert all(loader.add(c) for c in views)
        assert loader.finish() == root == txn.commit()
        assert _records(db) == store.nodes


def test_sync_loader_window_is_each_record_once_and_refuses_a_kept_pair() -> None:
    from zapstack.zapdb import _smtfast

    state = _state(90, 51)
    store = DictNodeStore()
    root = apply_updates_py(store, state.items())
    loader = _smtfast.SyncLoader(root, 3)
    for i in range(8):
        chunk = make_chunk(store, state.get, 3, i)
        assert loader.add(i, chunk.entries, chunk.siblings)
    assert loader.finish() == root
    for which, want in ((0, sorted(state.items())), (1, sorted(store.nodes.items()))):
        assert list(loader.records(which)) == want and loader.count(which) == len(want)
        got, it = [], loader.window(which)
        while (pair := next(it, None)) is not None:
            got.append((bytes(pair[0]), bytes(pair[1])))
            del pair  # let it go before the next: the window moves on
        assert got == want
        it = loader.window(which)
        kept = next(it)
        with pytest.raises(RuntimeError):
            next(it)  # the pair is still held: never handed back changed
        assert bytes(kept[0]) == want[0][0]


def test_sync_loader_settles_each_final_record_once_in_key_order(tmp_path: Path) -> None:
    state = _state(2000, 47)
    store = DictNodeStore()
    root = apply_updates_py(store, state.items())
    depth, order = 4, [1, 0, 3, 2, 5, 4, *range(6, 16)]
    from zapstack.zapdb import _smtfast

    sync = _smtfast.SyncLoader(root, depth)
    settled: list[tuple[bytes, bytes]] = []
    most = 0  # the node arena's largest size: what waits behind a gap, compacted
    for i in order:
        chunk = make_chunk(store, state.get, depth, i)
        assert sync.add(i, chunk.entries, chunk.siblings)
        n = sync.settle()
        assert n == sync.count(2) and (n == 0) == (i in (1, 3, 5))  # waits for the gap
        settled += [(bytes(k), bytes(v)) for k, v in sync.records(2)]
        most = max(most, sync.arena()[0])
        if n:
            window = sync.window(2)
            next(window)  # a window of this settle() ...
            assert sync.settle() == 0
            with pytest.raises(RuntimeError):
                next(window)  # ... refuses to go on after the next one
    assert [k for k, _ in settled] == sorted({k for k, _ in settled})  # ascending, once each
    total = sum(37 + len(v) for _, v in settled)
    assert most < total / 4  # ~3 chunks' records at most, of 16
    assert sync.finish() == root
    rest = list(sync.records(1))
    assert not {k for k, _ in rest} & {k for k, _ in settled}
    assert dict(rest) | dict(settled) == {k: v for k, v in store.nodes.items() if v is not None}
    with pytest.raises(ValueError):
        sync.settle()  # finished


@pytest.mark.parametrize("seed", range(6))
def test_sync_loader_compaction_keeps_what_waits_and_the_lone_leaves(seed: int) -> None:
    """Sparse chunks (empty, lone-leaf, interior tops) fed out of order, settling after
    each: compaction moves what waits behind a gap and the lone leaves, and settled plus
    finished records are still exactly the tree's."""
    from zapstack.zapdb import _smtfast

    rng = random.Random(seed)
    state = _state(rng.randrange(40, 400), seed + 100)
    store = DictNodeStore()
    root = apply_updates_py(store, state.items())
    depth = 6
    chunks = [make_chunk(store, state.get, depth, i) for i in range(1 << depth)]
    order = list(range(1 << depth))
    for _ in range(20):  # local swaps: gaps that close soon, as replies arrive
        a = rng.randrange(len(order) - 3)
        order[a], order[a + 3] = order[a + 3], order[a]
    sync = _smtfast.SyncLoader(root, depth)
    settled: dict[bytes, bytes] = {}
    for i in order:
        c = chunks[i]
        if len(c.siblings) == depth and c.terminal is None:
            assert sync.add(i, c.entries, c.siblings)
        else:  # the walk stopped above the chunk: the caller checked it
            assert verify_chunk(root, c)
            top, record = smt.EMPTY, None
            if c.entries:
                kh = smt.key_hash(c.entries[0][0])
                vh = hashlib.sha256(c.entries[0][1]).digest()
                top, record = smt.leaf_hash(kh, vh), smt.leaf_record(kh, vh, c.entries[0][0])
            sync.add_top(i, c.entries, top, record)
        sync.settle()
        settled |= {bytes(k): bytes(v) for k, v in sync.records(2)}
    assert sync.finish() == root
    rest = dict(sync.records(1))
    assert not set(rest) & set(settled)
    assert rest | settled == {k: v for k, v in store.nodes.items() if v is not None}
