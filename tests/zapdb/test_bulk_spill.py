"""A state sync's entries past a memory bound: ``SyncLoader.spill`` hands out each entry
once, sorted within its spill, and ``ChunkLoader`` writes them into the sync's LMDB txn
and frees them (``drop_spill``), so the synced store is the same and the entries held
stay under the bound between calls.

Expected stores come from the state itself (its dict) and the pure-Python tree
(``apply_updates_py``), never from the loader under test."""

from __future__ import annotations

import itertools
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.zapdb import StateChunk, ZapDB, batch, bulk
from zapstack.zapdb.proofs import make_chunk
from zapstack.zapdb.smt import DictNodeStore, apply_updates_py

pytestmark = pytest.mark.skipif(not batch.FAST, reason="the C extension is not built")


def _state(n: int, seed: int) -> dict[bytes, bytes]:
    rng = random.Random(seed)
    return {b"acct/%d" % rng.randrange(10**9): rng.randbytes(rng.randrange(60)) for _ in range(n)}


def _chunks(state: dict[bytes, bytes], depth: int) -> tuple[DictNodeStore, bytes, list[StateChunk]]:
    store = DictNodeStore()
    root = apply_updates_py(store, state.items())
    return store, root, [make_chunk(store, state.get, depth, i) for i in range(1 << depth)]


def _entry_bytes(chunk: StateChunk) -> int:
    """What a chunk's entries take in the loader's entry arena (8 bytes of lengths each)."""
    return sum(8 + len(k) + len(v) for k, v in chunk.entries)


def test_spill_hands_out_each_entry_once_sorted_and_starts_afresh() -> None:
    from zapstack.zapdb import _smtfast

    state = _state(2000, 5)
    _, root, chunks = _chunks(state, 4)
    order = list(range(16))
    random.Random(5).shuffle(order)
    sync = _smtfast.SyncLoader(root, 4)
    assert sync.spill() == 0 and sync.count(3) == 0 and list(sync.records(3)) == []
    handed: list[tuple[bytes, bytes]] = []
    window = None
    for n, i in enumerate(order, 1):
        assert sync.add(i, chunks[i].entries, chunks[i].siblings)
        if n % 3:
            continue
        held = sync.arena()[1]
        assert held == sum(_entry_bytes(chunks[j]) for j in order[n - 3 : n])
        got = sync.spill()
        spilled = list(sync.records(3))
        assert (
            got
            == sync.count(3)
            == len(spilled)
            == sum(len(chunks[j].entries) for j in order[n - 3 : n])
        )
        assert [k for k, _ in spilled] == sorted(k for k, _ in spilled)  # sorted within it
        assert sync.arena()[1] == 0  # a fresh entry arena
        if spilled:
            key, value = spilled[len(spilled) // 2]
            assert sync.get(3, key) == value and sync.get(3, key + b"\xff") is None
        if window is not None:
            with pytest.raises(RuntimeError):
                next(window)  # the last spill's window refuses to go on
        window = sync.window(3)
        if spilled:
            pair = next(window)
            assert (bytes(pair[0]), bytes(pair[1])) == spilled[0]
            del pair
        handed += spilled
        if n % 2:  # freed now, not at the next spill
            sync.drop_spill()
            assert sync.count(3) == 0 and list(sync.records(3)) == []
            with pytest.raises(RuntimeError):
                next(window)  # its window refuses to go on
            window = None
    assert sync.finish() == root
    rest = list(sync.records(0))
    assert [k for k, _ in rest] == sorted(k for k, _ in rest)
    assert len(handed) + len(rest) == len(state)  # each entry exactly once ...
    assert dict(handed) | dict(rest) == state  # ... and every one of them
    with pytest.raises(ValueError):
        sync.spill()  # finished


def _sync(
    state: dict[bytes, bytes], depth: int, spill: int, seed: int, cuts: list[int] | None = None
) -> tuple[dict[bytes, bytes], dict[bytes, bytes], bytes, int]:
    """A ChunkLoader sync of ``state`` (chunks shuffled; ``add_many`` batches at ``cuts``)
    with entries spilled past ``spill`` bytes: (data, tree records, root, the most entry
    bytes the loader held after a call)."""
    _, root, chunks = _chunks(state, depth)
    feed = list(chunks)
    random.Random(seed).shuffle(feed)
    bounds = [0, *sorted(c % (len(feed) + 1) for c in cuts or []), len(feed)]
    with tempfile.TemporaryDirectory() as tmp, ZapDB.open(Path(tmp), map_size=1 << 26) as dst:
        txn = dst.begin()
        loader = bulk.ChunkLoader(txn, root, depth, spill_bytes=spill)
        assert loader._sync is not None
        most = 0
        for lo, hi in itertools.pairwise(bounds):
            part = feed[lo:hi]
            if cuts is None:
                assert all(loader.add(chunk) for chunk in part)
            else:
                assert all(loader.add_many(part))
            most = max(most, loader._sync.arena()[1])
            assert loader._sync.count(3) == 0  # a spill's entries are freed once written
        assert loader.finish() == root == txn.commit() == dst.root()
        with dst._env.begin() as lmdb_txn:
            records = dict(lmdb_txn.cursor(db=dst._dbs[1]).iternext())
        with dst.read() as view:
            return dict(view.iterate()), records, view.tree_root(), most


@pytest.mark.parametrize("spill", [0, 1, 3000, 1 << 30])
def test_a_sync_that_spills_gives_the_same_store(spill: int) -> None:
    state = _state(3000, spill % 97)
    want_records = {k: v for k, v in _chunks(state, 0)[0].nodes.items() if v is not None}
    for cuts in (None, [5, 9, 30]):
        data, records, root, most = _sync(state, 5, spill, spill, cuts)
        assert data == state and records == want_records
        assert most < max(spill, 1)  # what stays held between calls is under the bound
    assert root == apply_updates_py(DictNodeStore(), state.items())


def test_a_discarded_sync_leaves_no_spilled_entry(tmp_path: Path) -> None:
    state = _state(500, 3)
    _, root, chunks = _chunks(state, 3)
    with ZapDB.open(tmp_path / "db", map_size=1 << 26) as dst:
        txn = dst.begin()
        loader = bulk.ChunkLoader(txn, root, 3, spill_bytes=1)
        for chunk in chunks[:5]:
            assert loader.add(chunk)
        assert dst._early is not None  # entries went into the sync's LMDB txn ...
        with dst._early.txn.cursor(db=dst._dbs[0]) as cur:
            assert sum(1 for _ in cur.iternext()) == sum(len(c.entries) for c in chunks[:5])
        txn.discard()
        with dst.read() as view:  # ... which the discard aborted
            assert dict(view.iterate()) == {} and dst.version == 0


STATES = st.dictionaries(st.binary(min_size=1, max_size=24), st.binary(max_size=40), max_size=80)


@settings(max_examples=40, deadline=None)
@given(
    STATES,
    st.integers(0, 5),
    st.integers(0, 600),
    st.integers(0, 2**32),
    st.none() | st.lists(st.integers(0, 64), max_size=4),
)
def test_any_state_and_bound_syncs_to_the_state(
    state: dict[bytes, bytes], depth: int, spill: int, seed: int, cuts: list[int] | None
) -> None:
    data, records, root, _ = _sync(state, depth, spill, seed, cuts)
    tree = DictNodeStore()
    assert root == apply_updates_py(tree, state.items())
    assert data == state
    assert records == {k: v for k, v in tree.nodes.items() if v is not None}
