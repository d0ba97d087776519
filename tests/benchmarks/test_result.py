"""RowResult and the timing helpers."""

from __future__ import annotations

import json

from zapstack.benchmarks.result import RowResult, cores, median_time, rate_ratio, time_ratio


def test_ratios_point_the_same_way() -> None:
    assert rate_ratio(200.0, 100.0) == 2.0  # twice the rate
    assert time_ratio(50.0, 100.0) == 2.0  # half the time


def test_median_time_and_cores() -> None:
    calls = []
    assert median_time(lambda: calls.append(1), 3) >= 0
    assert len(calls) == 4  # warm-up + 3
    assert cores() >= 1


def test_json_round_trip() -> None:
    row = RowResult("k", "op", "s", "p", 1.0, 2.0, "tx/s", True, 2.0, "~2x", extras={"a": 1.5})
    doc = json.loads(json.dumps(row.to_json()))
    assert RowResult(**doc) == row
