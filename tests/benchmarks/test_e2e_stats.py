"""The end-to-end row's arithmetic, against values worked out by hand from its definitions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.benchmarks.e2e_stats import (
    Ceiling,
    final_times,
    latencies,
    median_or_none,
    percentile,
    stage_medians,
    tier_ms,
    verify_ceiling,
    window_rate,
)


def test_percentile_nearest_rank_worked_example() -> None:
    # the nearest-rank example: 5 samples, p30 -> rank ceil(1.5) = 2, p40 -> rank 2
    xs = [35, 20, 15, 50, 40]
    assert percentile(xs, 5) == 15
    assert percentile(xs, 30) == 20
    assert percentile(xs, 40) == 20
    assert percentile(xs, 50) == 35
    assert percentile(xs, 100) == 50
    assert percentile(range(1, 101), 99) == 99
    assert percentile(range(1, 101), 50) == 50


@pytest.mark.parametrize("q", [0, -1, 100.5])
def test_percentile_rejects_bad_q(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_of_nothing_raises() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60), st.floats(0.5, 100))
def test_percentile_is_the_smallest_sample_covering_q(xs: list[float], q: float) -> None:
    p = percentile(xs, q)
    assert p in xs
    assert sum(1 for x in xs if x <= p) >= q / 100 * len(xs)
    assert sum(1 for x in xs if x < p) < q / 100 * len(xs)


def test_median_or_none() -> None:
    assert median_or_none([]) is None
    assert median_or_none([3, 1, 2]) == 2
    assert median_or_none([4, 1, 2, 3]) == 2.5


def test_final_times_fill_skipped_heights_from_unordered_observations() -> None:
    obs = [(1.0, 2), (0.5, 1), (2.0, 2), (3.0, 5), (2.5, 1)]
    assert final_times(obs) == {1: 0.5, 2: 1.0, 3: 3.0, 4: 3.0, 5: 3.0}
    assert final_times([]) == {}


def test_window_rate_counts_blocks_final_inside_the_half_open_window() -> None:
    blocks = {1: 10, 2: 20, 3: 30, 4: 40}
    final = {1: 0.5, 2: 1.0, 3: 2.0, 4: 1.5}
    assert window_rate(blocks, final, 1.0, 2.0) == 60.0  # heights 2 and 4
    assert window_rate(blocks, final, 0.0, 4.0) == 25.0
    assert window_rate({5: 99}, final, 0.0, 4.0) == 0.0  # never final
    with pytest.raises(ValueError):
        window_rate(blocks, final, 2.0, 2.0)


def test_latencies_of_txs_sent_in_the_window() -> None:
    sent = {b"a": 1.0, b"b": 1.5, b"c": 0.5, b"d": 1.8, b"e": 2.0}
    where = {b"a": 1, b"b": 2, b"c": 1, b"d": 3}  # d is in a block never seen final
    final = {1: 2.0, 2: 3.5}
    lat, missing = latencies(sent, where, final, 1.0, 2.0)
    assert sorted(lat) == [1.0, 2.0]
    assert missing == 1  # d; c was sent before the window, e at its (open) end


def test_a_resend_of_a_tx_already_final_has_no_latency() -> None:
    """A client resending a frame the chain already holds (its height was final
    before the send) used to give a negative submit -> final time (-331 s in one run)."""
    sent = {b"old": 10.0, b"new": 10.0}
    where = {b"old": 1, b"new": 2}
    final = {1: 4.0, 2: 11.5}
    lat, missing = latencies(sent, where, final, 9.0, 12.0)
    assert lat == [1.5]
    assert missing == 0


def test_tier_ms_is_the_latest_required_leg() -> None:
    legs = {"bls": 100, "pulsar": 250, "corona": 400, "magnetar": -1}
    assert tier_ms(legs, ["bls", "pulsar"]) == 250
    assert tier_ms(legs, ["bls", "pulsar", "corona"]) == 400
    assert tier_ms(legs, ["bls", "magnetar"]) is None  # failed
    assert tier_ms({"bls": 5}, ["bls", "pulsar"]) is None  # never aggregated


def test_ceiling_arithmetic() -> None:
    c = Ceiling(verifies_per_s=8000.0, cores=2, validators=4, checks_per_validator=1)
    assert c.checks_per_tx == 4
    assert c.tx_per_s == 2000.0
    # without the cache each validator checks twice (admission/gossip, then block verify)
    assert verify_ceiling(8000.0, 4, 2) == 1000.0
    assert math.isclose(verify_ceiling(7000.0, 7), 1000.0)
    with pytest.raises(ValueError):
        verify_ceiling(8000.0, 0)


def test_stage_medians_per_stage_over_the_heights_that_timed_it() -> None:
    heights = [
        {"proposal": 400, "executed": 700, "committed": 1000},
        {"proposal": 410, "committed": 900},
        {"proposal": 500, "executed": 900, "committed": 1100},
    ]
    assert stage_medians(heights) == {"proposal": 410.0, "executed": 800.0, "committed": 1000.0}
    assert stage_medians([]) == {}
