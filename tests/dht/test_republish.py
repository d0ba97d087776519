"""The provider republish schedule on a mock clock: rate bound, freshness, order, unwind."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.dht.republish import ProvideSchedule


def _keys(n: int) -> list[bytes]:
    return [i.to_bytes(32, "big") for i in range(n)]


def _drive(
    s: ProvideSchedule,
    until: float,
    *,
    step: float = 0.05,
    latency: float = 0.0,
    ok: Callable[[bytes, float], bool] = lambda key, now: True,
) -> list[tuple[float, bytes]]:
    """Run the schedule on a mock clock: every announcement takes ``latency`` s.

    Returns (start time, key) of every announcement started.
    """
    started: list[tuple[float, bytes]] = []
    running: list[tuple[float, bytes]] = []
    t = 0.0
    while t <= until:
        for end, key in [r for r in running if r[0] <= t]:
            running.remove((end, key))
            s.done(key, t, ok=ok(key, t))
        for key in s.take(t):
            started.append((t, key))
            running.append((t + latency, key))
        t = round(t + step, 9)
    return started


def test_a_key_is_announced_once_then_again_within_the_period() -> None:
    s = ProvideSchedule(rng=random.Random(1), now=0.0, period=100.0, jitter=0.25)
    assert s.add(b"k" * 32, 0.0) and not s.add(b"k" * 32, 0.0)
    assert s.take(0.0) == [b"k" * 32]
    assert s.take(0.0) == [] and s.in_flight == 1 and s.due_at(b"k" * 32) is None
    s.done(b"k" * 32, 2.0, ok=True)
    s.done(b"k" * 32, 2.0, ok=True)  # idempotent
    due = s.due_at(b"k" * 32)
    assert due is not None and 2.0 + 75.0 <= due <= 2.0 + 100.0
    assert s.take(due - 0.001) == [] and s.take(due) == [b"k" * 32]
    assert s.announced == 1 and s.failed == 0


def test_a_failed_announcement_is_retried_after_the_retry_delay() -> None:
    s = ProvideSchedule(rng=random.Random(1), now=0.0, retry=30.0)
    s.add(b"a" * 32, 0.0)
    assert s.take(0.0) == [b"a" * 32]
    s.done(b"a" * 32, 1.0, ok=False)
    assert s.due_at(b"a" * 32) == 31.0 and s.failed == 1
    assert s.take(30.9) == [] and s.take(31.0) == [b"a" * 32]


def test_the_announce_rate_is_bounded_however_many_keys_are_due() -> None:
    rate, burst = 10.0, 5.0
    s = ProvideSchedule(rng=random.Random(2), now=0.0, rate=rate, burst=burst, max_in_flight=1000)
    for key in _keys(2000):
        s.add(key, 0.0)  # all due at once
    starts = [t for t, _ in _drive(s, 60.0, step=0.01)]
    for i, t0 in enumerate(starts):  # any window [t0, t0 + w]: <= burst + rate * w starts
        for w in (0.0, 0.5, 1.0, 10.0):
            n = sum(1 for t in starts[i:] if t <= t0 + w + 1e-9)
            assert n <= burst + rate * w + 1e-9
    assert len(starts) >= rate * 59  # and it does use the rate


def test_at_most_max_in_flight_announcements_run_at_once() -> None:
    s = ProvideSchedule(rng=random.Random(3), now=0.0, max_in_flight=3, rate=1000.0, burst=1000.0)
    for key in _keys(50):
        s.add(key, 0.0)  # all due at once
    busy = ProvideSchedule(rng=random.Random(3), now=0.0, max_in_flight=3, rate=1e3, burst=1e3)
    busy.add_backlog(_keys(50), 0.0)
    assert len(busy.take(1.0)) == 3 and busy.take(1.0) == [] and busy.next_deadline() is None
    started = _drive(s, 30.0, step=0.1, latency=0.35)
    assert len(started) == 50
    # 0.35 s each, 3 at a time, on a 0.1 s clock: a new batch every 0.4 s
    assert max(sum(1 for t, _ in started if t == t0) for t0, _ in started) == 3
    assert started[-1][0] == pytest.approx(0.4 * 16)  # ceil(50 / 3) = 17 batches


def test_a_backlog_is_spread_and_a_fresh_block_does_not_wait_behind_it() -> None:
    s = ProvideSchedule(rng=random.Random(4), now=0.0, rate=10.0, burst=10.0, max_in_flight=100)
    backlog = _keys(1000)
    assert s.add_backlog(backlog, 0.0) == 1000 and s.add_backlog(backlog[:5], 0.0) == 0
    assert s.due_at(backlog[0]) == 0.0 and s.due_at(backlog[999]) == pytest.approx(99.9)
    fresh = b"\xff" * 32
    s.add(fresh, 5.0)
    started = _drive(s, 8.0)
    order = [k for _, k in started]
    assert fresh in order and order.index(fresh) <= 51  # before backlog keys due after 5.0
    assert order[: order.index(fresh)] == backlog[: order.index(fresh)]  # newest-first kept


def test_a_removed_key_is_not_announced_again() -> None:
    s = ProvideSchedule(rng=random.Random(5), now=0.0)
    a, b = b"a" * 32, b"b" * 32
    s.add(a, 0.0)
    s.add(b, 0.0)
    s.remove(a)
    s.remove(a)  # idempotent
    assert s.take(0.0) == [b]
    s.remove(b)  # while in flight
    s.done(b, 1.0, ok=True)
    assert len(s) == 0 and s.due_at(b) is None and s.next_deadline() is None
    assert s.take(1e9) == []


def test_next_deadline_waits_for_a_token() -> None:
    s = ProvideSchedule(rng=random.Random(6), now=0.0, rate=2.0, burst=1.0, max_in_flight=10)
    s.add_backlog(_keys(3), 0.0)
    assert s.next_deadline() == 0.0
    assert len(s.take(0.0)) == 1
    assert s.next_deadline() == pytest.approx(0.5)  # next key due at 0.5, token at 0.5
    assert s.take(0.49) == [] and len(s.take(0.5)) == 1


def test_bad_parameters_are_refused() -> None:
    for kw in ({"period": 0.0}, {"jitter": 1.0}, {"rate": 0.0}, {"burst": 0.5}):
        with pytest.raises(ValueError):
            ProvideSchedule(rng=random.Random(0), now=0.0, **kw)  # type: ignore[arg-type]
    assert ProvideSchedule(rng=random.Random(0), now=0.0).capacity == 324_000


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 120),
    rate=st.sampled_from([5.0, 10.0, 20.0]),
    seed=st.integers(0, 2**16),
    fail_every=st.sampled_from([0, 2, 3, 7]),
)
def test_every_key_stays_fresh_within_its_ttl(
    n: int, rate: float, seed: int, fail_every: int
) -> None:
    """Under capacity: with no failures no key goes a TTL (2 periods) unannounced; a
    success is followed by the next attempt within the period, a failure by a retry
    within the retry delay (plus, in both cases, the queue ahead of it at ``rate``).

    (A deterministic failure pattern can keep failing one key's attempts forever, so
    with failures the promise is the prompt retry, not freshness.)"""
    period, ttl, retry, step, latency = 60.0, 120.0, 5.0, 0.25, 0.3
    s = ProvideSchedule(
        rng=random.Random(seed), now=0.0, period=period, rate=rate, burst=rate, retry=retry
    )
    assert n < s.capacity
    s.add_backlog(_keys(n), 0.0)
    calls = {"n": 0}
    attempts: dict[bytes, list[tuple[float, bool]]] = {}

    def ok(key: bytes, now: float) -> bool:
        calls["n"] += 1
        fine = fail_every == 0 or calls["n"] % fail_every != 0
        attempts.setdefault(key, []).append((now, fine))
        return fine

    _drive(s, 4 * period, step=step, latency=latency, ok=ok)
    held = math.ceil(latency / step) * step  # an announcement occupies a slot this long
    effective = min(rate, s.max_in_flight / held)  # what the rate and the slots allow
    slack = 1.5 * n / effective + 4 * step + latency  # the queue ahead, with step rounding
    for key in _keys(n):
        tried = attempts[key]
        assert tried[0][0] <= slack  # the backlog drains at the announce rate
        for (t0, good), (t1, _) in itertools.pairwise(tried):
            assert t1 - t0 <= (period if good else retry) + slack
        if fail_every == 0:
            times = [0.0, *(t for t, _ in tried), 4 * period]
            assert max(b - a for a, b in itertools.pairwise(times)) < ttl
