"""A state sync's watch: stalled only after stall_s without progress, lines, records."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.bootstrap.events import NO_PROGRESS, StateProgress
from zapstack.node.syncwatch import SyncWatch


def test_a_sync_that_keeps_moving_never_stalls_however_long_it_takes() -> None:
    watch = SyncWatch(0.0, stall_s=60, every_s=10)
    watch.observe(8, StateProgress(0, 1024, 0), 5.0)
    for chunk in range(1, 1025):  # one chunk every 50 s: 14 hours, never 60 s idle
        now = 5.0 + 50 * chunk
        watch.observe(8, StateProgress(chunk, 1024, 100 * chunk), now)
        assert not watch.stalled(now + 59.9)
    assert watch.progress == StateProgress(1024, 1024, 102400)


@pytest.mark.parametrize(
    ("target", "progress"),
    [
        (None, NO_PROGRESS),  # no target block yet
        (8, NO_PROGRESS),  # a target, the depth probe unanswered
        (8, StateProgress(3, 256, 300)),  # chunks came, then none
    ],
)
def test_no_progress_for_stall_s_is_a_stall(target: int | None, progress: StateProgress) -> None:
    watch = SyncWatch(100.0, stall_s=60, every_s=10)
    watch.observe(target, progress, 110.0)  # the first observation after the start
    moved = 100.0 if (target, progress) == (None, NO_PROGRESS) else 110.0
    assert watch.moved == moved
    for now in (120.0, 150.0, moved + 59.0):
        watch.observe(target, progress, now)  # the same: no progress
        assert not watch.stalled(now)
    watch.observe(target, progress, moved + 60.0)
    assert watch.stalled(moved + 60.0)
    why = watch.failure(moved + 60.0)
    assert why.startswith("state sync made no progress for 60 s (")
    expected = {
        None: "before choosing a target block",
        0: "at height 8, before choosing a chunk depth",
        256: "at height 8, 3/256 chunks",
    }[None if target is None else progress.total]
    assert expected in why


def test_each_kind_of_progress_resets_the_stall_clock() -> None:
    watch = SyncWatch(0.0, stall_s=10, every_s=5)
    steps = [
        (8, NO_PROGRESS),  # a target chosen
        (8, StateProgress(0, 256, 0)),  # the depth chosen
        (8, StateProgress(1, 256, 90)),  # a chunk verified
        (9, StateProgress(1, 256, 90)),  # (a changed target counts as well)
    ]
    for i, (target, progress) in enumerate(steps, start=1):
        now = 9.0 * i
        assert not watch.stalled(now)
        watch.observe(target, progress, now)
        assert watch.moved == now


def test_progress_lines_come_every_every_s_while_chunks_are_downloaded() -> None:
    watch = SyncWatch(0.0, stall_s=60, every_s=10)
    watch.observe(None, NO_PROGRESS, 1.0)
    assert watch.line(30.0) is None  # nothing to report before a chunk total
    watch.observe(8, StateProgress(0, 1024, 0), 2.0)
    assert watch.line(11.9) is None  # 10 s after the download started, not before
    watch.observe(8, StateProgress(412, 1024, 41200), 12.0)
    line = watch.line(12.0)
    assert line == (
        "state sync at height 8: 412/1024 chunks (40%), 41200 entries, 12 s, "
        "41.2 chunks/s, about 15 s to go"
    )
    assert watch.line(21.9) is None
    watch.observe(8, StateProgress(412, 1024, 41200), 40.0)
    assert watch.line(40.0) is not None
    assert watch.rate(40.0) == pytest.approx(412 / 38)


def test_a_line_says_how_long_no_chunk_came_when_none_came_since_the_start() -> None:
    watch = SyncWatch(0.0, stall_s=60, every_s=10)
    watch.observe(8, StateProgress(0, 64, 0), 1.0)
    watch.observe(8, StateProgress(0, 64, 0), 25.0)
    assert watch.line(25.0) == (
        "state sync at height 8: 0/64 chunks (0%), 0 entries, 25 s, no chunk for 24 s"
    )


def test_the_status_record() -> None:
    watch = SyncWatch(10.0, stall_s=60, every_s=10)
    assert watch.record(10.0) == {
        "target": None, "chunks": 0, "of": 0, "entries": 0, "seconds": 0.0, "idle_s": 0.0,
        "retargets": 0, "not_found": 0,
    }  # fmt: skip
    watch.observe(7, StateProgress(5, 256, 480), 12.5)
    watch.observe(7, StateProgress(5, 256, 480), 14.0)
    assert watch.now == 14.0
    assert watch.record(14.0) == {
        "target": 7, "chunks": 5, "of": 256, "entries": 480, "seconds": 4.0, "idle_s": 1.5,
        "retargets": 0, "not_found": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("stall", "every", "retarget"), [(0, 10, None), (60, 0, None), (-1, 10, None), (60, 10, 0)]
)
def test_bounds_must_be_positive(stall: float, every: float, retarget: float | None) -> None:
    with pytest.raises(ValueError, match="positive"):
        SyncWatch(0.0, stall_s=stall, every_s=every, retarget_s=retarget)


def test_a_target_refused_not_found_with_no_progress_is_due_a_start_over() -> None:
    watch = SyncWatch(0.0, stall_s=60, every_s=10, retarget_s=10, retargets=2)
    watch.observe(5, StateProgress(3, 64, 30), 1.0, not_found=4)  # progress at 1.0
    watch.observe(5, StateProgress(3, 64, 30), 10.9, not_found=9)
    assert not watch.retarget_due(10.9)  # refused since the progress, but not 10 s yet
    watch.observe(5, StateProgress(3, 64, 30), 11.0, not_found=9)
    assert watch.retarget_due(11.0)
    watch.retargeted(11.0)
    assert watch.record(11.0) == {
        "target": None, "chunks": 0, "of": 0, "entries": 0, "seconds": 11.0, "idle_s": 0.0,
        "retargets": 1, "not_found": 9,
    }  # fmt: skip
    assert not watch.stalled(70.9) and not watch.retarget_due(30.0)  # starting over: progress
    watch.observe(8, NO_PROGRESS, 12.0, not_found=9)  # the new target
    watch.observe(8, NO_PROGRESS, 40.0, not_found=9)
    assert not watch.retarget_due(40.0)  # no progress, but nothing refused since the target
    watch.observe(8, NO_PROGRESS, 41.0, not_found=10)
    assert watch.retarget_due(41.0)
    watch.retargeted(41.0)
    watch.observe(9, NO_PROGRESS, 42.0, not_found=10)
    watch.observe(9, NO_PROGRESS, 99.0, not_found=50)
    assert not watch.retarget_due(99.0)  # both start-overs spent: the stall bound decides
    assert watch.stalled(102.0) and watch.retargets == 2


def test_without_a_target_or_a_retarget_bound_nothing_is_due() -> None:
    never = SyncWatch(0.0, stall_s=60, every_s=10)  # retarget_s None
    never.observe(5, NO_PROGRESS, 1.0, not_found=0)
    never.observe(5, NO_PROGRESS, 50.0, not_found=7)
    assert not never.retarget_due(50.0)
    untargeted = SyncWatch(0.0, stall_s=60, every_s=10, retarget_s=1, retargets=3)
    untargeted.observe(None, NO_PROGRESS, 0.5, not_found=7)  # refusals before any target
    assert not untargeted.retarget_due(30.0)


_step = st.tuples(
    st.floats(0, 30, allow_nan=False),  # seconds until the observation
    st.one_of(st.none(), st.integers(1, 3)),  # target height
    st.integers(0, 2),  # total: 0, 16 or 256 chunks
    st.integers(0, 3),  # chunks verified
)


@given(st.lists(_step, max_size=40), st.floats(1, 40, allow_nan=False))
def test_stalled_matches_a_model_of_the_last_change(
    steps: list[tuple[float, int | None, int, int]], stall: float
) -> None:
    """Model: the time of the last observation whose (target, total, chunks) differed from
    the one before it (the start, before any); stalled iff now - that >= stall_s."""
    watch = SyncWatch(0.0, stall_s=stall, every_s=10)
    now, last_change = 0.0, 0.0
    seen: tuple[int | None, int, int] = (None, 0, 0)
    for gap, target, total_i, chunks in steps:
        now += gap
        total = (0, 16, 256)[total_i]
        if (target, total, chunks) != seen:
            last_change, seen = now, (target, total, chunks)
        watch.observe(target, StateProgress(chunks, total, 10 * chunks), now)
        for probe in (now, now + stall / 2, now + stall):
            assert watch.stalled(probe) == (probe - last_change >= stall)


_retarget_step = st.tuples(
    st.floats(0, 8, allow_nan=False),  # seconds until the observation
    st.one_of(st.none(), st.integers(1, 2)),  # target height
    st.integers(0, 2),  # chunks verified
    st.integers(0, 2),  # more NOT_FOUND refusals since the last observation
    st.booleans(),  # start over when due
)


@given(st.lists(_retarget_step, max_size=40), st.integers(0, 3))
def test_retarget_due_matches_a_model(
    steps: list[tuple[float, int | None, int, int, bool]], budget: int
) -> None:
    """Model: due iff start-overs are left, a target is set, the last change (or start
    over) is >= 10 s back, and the NOT_FOUND count rose since that change."""
    watch = SyncWatch(0.0, stall_s=100, every_s=10, retarget_s=10, retargets=budget)
    now, changed, nf, nf_at_change, left = 0.0, 0.0, 0, 0, budget
    seen: tuple[int | None, int, int] = (None, 0, 0)  # (target, total, chunks)
    for gap, target, chunks, refusals, start_over in steps:
        now += gap
        nf += refusals
        if (target, 4, chunks) != seen:
            changed, nf_at_change, seen = now, nf, (target, 4, chunks)
        watch.observe(target, StateProgress(chunks, 4, chunks), now, not_found=nf)
        due = left > 0 and target is not None and now - changed >= 10 and nf > nf_at_change
        assert watch.retarget_due(now) == due
        if due and start_over:
            watch.retargeted(now)
            left -= 1
            changed, nf_at_change, seen = now, nf, (None, 0, 0)  # NO_PROGRESS
    assert watch.retargets == budget - left
