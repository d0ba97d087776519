"""The sans-IO production scheduler: start rules, overlap, reservations, failure unwind."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.errors import LocalProtocolError, WireCode
from zapstack.producer.pipeline import (
    BlockAbandoned,
    BlockFinalized,
    Pipeline,
    StageName,
    Task,
    TxDropped,
)

S, B, G = StageName.SELECT, StageName.BUILD, StageName.SIGN


def _ids(seq: int, n: int = 2) -> list[tuple[bytes, int]]:
    return [(bytes([seq, i]) * 16, 100) for i in range(n)]


def test_depth_three_overlaps_all_stages() -> None:
    p = Pipeline(3)
    assert p.poll() == [Task(0, S)]
    p.selected(Task(0, S), _ids(0))
    assert p.poll() == [Task(0, B), Task(1, S)]
    p.selected(Task(1, S), _ids(1))
    assert p.poll() == [Task(2, S)]
    p.selected(Task(2, S), _ids(2))
    assert p.poll() == []  # three in flight; the builder is busy
    p.built(Task(0, B), tuple(t for t, _ in _ids(0)), [])
    assert p.poll() == [Task(0, G), Task(1, B)]
    assert (p.busy(S), p.busy(B), p.busy(G)) == (None, 1, 0)
    ev = p.signed(Task(0, G))
    assert ev == [BlockFinalized(0, tuple(t for t, _ in _ids(0)))]
    assert p.poll() == [Task(3, S)]  # N+1 selects while N builds ...
    p.built(Task(1, B), (), [])
    assert p.poll() == [Task(1, G), Task(2, B)]  # ... while N-1 signs
    assert all(p.busy(s) is not None for s in StageName)


def test_depth_one_never_overlaps() -> None:
    p = Pipeline(1, max_blocks=3)
    order = []
    while not p.idle:
        tasks = p.poll()
        assert len(tasks) == 1
        t = tasks[0]
        order.append((t.seq, t.stage))
        if t.stage is S:
            p.selected(t, _ids(t.seq))
        elif t.stage is B:
            p.built(t, (), [])
        else:
            p.signed(t)
    assert order == [(s, st) for s in range(3) for st in (S, B, G)]
    assert p.finalized == 3


def test_reservations_follow_the_slots() -> None:
    p = Pipeline(2)
    p.poll()
    p.selected(Task(0, S), _ids(0, 3))
    assert len(p.reserved) == 3 and p.reserved_bytes == 300
    p.poll()
    ahead, bad = _ids(0, 3)[1][0], _ids(0, 3)[2][0]
    ev = p.built(
        Task(0, B),
        (_ids(0, 3)[0][0],),
        [(ahead, WireCode.BAD_NONCE, True), (bad, WireCode.INSUFFICIENT_BALANCE, False)],
    )
    assert ev == [TxDropped(bad, WireCode.INSUFFICIENT_BALANCE)]  # nonce-ahead: released only
    assert p.reserved == {_ids(0, 3)[0][0]}


def test_sign_failure_abandons_younger_slots_and_drops_named_tx() -> None:
    p = Pipeline(3)
    for seq in range(3):
        p.poll()
        p.selected(Task(seq, S), _ids(seq))
    p.built(Task(0, B), tuple(t for t, _ in _ids(0)), [])
    assert p.poll() == [Task(0, G), Task(1, B)]
    bad = _ids(0)[1][0]
    ev = p.failed(Task(0, G), "validator rejected", (bad, WireCode.BAD_SIGNATURE))
    # slot 1's BUILD is running: it is not unwound under the build (LP-0202 unwind rule)
    assert ev == [
        TxDropped(bad, WireCode.BAD_SIGNATURE),
        BlockAbandoned(0, "validator rejected"),
        BlockAbandoned(2, "validator rejected"),
    ]
    assert p.reserved == frozenset() and p.in_flight == () and p.abandoning == (1,)
    assert p.poll() == [Task(3, S)]  # a new slot may select; slot 1 still holds the builder
    p.selected(Task(3, S), _ids(3))
    assert p.poll() == [Task(4, S)]  # 2 slots + 1 abandoning = depth 3
    p.selected(Task(4, S), _ids(4))
    assert p.poll() == []  # depth counts the abandoning slot; builder busy
    # its BUILD result is what emits its abandon (the driver rolls back what it wrote)
    assert p.built(Task(1, B), (), []) == [BlockAbandoned(1, "validator rejected")]
    assert p.abandoning == ()
    with pytest.raises(LocalProtocolError):  # one result per job
        p.built(Task(1, B), (), [])
    assert p.poll() == [Task(3, B), Task(5, S)]  # next round starts from scratch
    with pytest.raises(LocalProtocolError):
        p.signed(Task(0, G))


def test_failed_build_of_an_abandoning_slot_also_emits_its_abandon() -> None:
    p = Pipeline(3)
    for seq in range(2):
        p.poll()
        p.selected(Task(seq, S), _ids(seq))
    p.built(Task(0, B), (), [])
    assert p.poll() == [Task(0, G), Task(1, B), Task(2, S)]
    # 1 builds (its abandon waits), 2 is selecting (nothing to unwind: abandoned at once)
    assert p.failed(Task(0, G), "r") == [BlockAbandoned(0, "r"), BlockAbandoned(2, "r")]
    assert p.selected(Task(2, S), _ids(2)) is None and p.in_flight == ()
    assert p.failed(Task(1, B), "store") == [BlockAbandoned(1, "r")]  # exactly once
    assert p.abandoning == () and p.busy(B) is None


def test_first_seq_numbers_slots_after_an_earlier_run() -> None:
    p = Pipeline(2, max_blocks=2, first_seq=7)
    assert p.poll() == [Task(7, S)] and p.next_seq == 8
    p.selected(Task(7, S), _ids(7))
    assert p.poll() == [Task(7, B), Task(8, S)]
    p.selected(Task(8, S), _ids(8))
    assert p.poll() == [] and p.next_seq == 9  # max_blocks counts from first_seq


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2**32))
def test_random_schedules_keep_the_invariants(depth: int, seed: int) -> None:
    rng = random.Random(seed)
    p = Pipeline(depth, max_blocks=12)
    running: list[Task] = []
    finalized: list[int] = []
    abandoned: set[int] = set()
    opened: set[int] = set()
    build_started: set[int] = set()
    build_reported: set[int] = set()
    for _ in range(400):
        for t in p.poll():
            running.append(t)
            if t.stage is S:
                opened.add(t.seq)
            elif t.stage is B:
                build_started.add(t.seq)
        assert len(p.in_flight) <= depth
        assert len({t.stage for t in running}) == len(running)  # one job per stage
        if not running:
            break
        t = running.pop(rng.randrange(len(running)))
        if t.stage is S:
            p.selected(t, _ids(t.seq % 250))
            continue
        if t.stage is G:
            assert not p.in_flight or t.seq <= p.in_flight[0]
        fail = rng.random() < 0.15
        if fail:
            events = p.failed(t, "x")
        elif t.stage is B:
            events = p.built(t, (), [])
        else:
            events = p.signed(t)
        if t.stage is B:
            build_reported.add(t.seq)
        for e in events:
            if isinstance(e, BlockFinalized):
                finalized.append(e.seq)
            elif isinstance(e, BlockAbandoned):
                assert e.seq not in abandoned  # exactly one abandon per slot
                # never unwound while its BUILD runs: the abandon follows the result
                assert e.seq not in build_started or e.seq in build_reported
                abandoned.add(e.seq)
    assert not p.abandoning
    assert build_started <= set(finalized) | abandoned
    assert finalized == sorted(finalized)
    assert not set(finalized) & abandoned
    assert set(finalized) | abandoned == opened
