"""Shared checks for the performance-table rows (no timing thresholds: sanity only)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from zapstack.benchmarks.result import RowResult


def _check_row(row: RowResult, key: str, unit: str) -> None:
    """Figures are finite and positive, and the ratio agrees with them."""
    assert row.key == key and row.unit == unit
    for value in (row.serial, row.pipelined, row.ratio, row.seconds):
        assert math.isfinite(value) and value > 0
    expected = row.pipelined / row.serial if row.higher_is_better else row.serial / row.pipelined
    assert math.isclose(row.ratio, expected)
    if row.native_limit is not None:
        assert math.isfinite(row.native_limit) and row.native_limit > 0 and row.native_label
    assert all(math.isfinite(v) for v in row.extras.values())
    assert row.to_json()["ratio"] == row.ratio


CheckRow = Callable[[RowResult, str, str], None]


@pytest.fixture
def check_row() -> CheckRow:
    """The row sanity check (a fixture: test modules cannot import conftest here)."""
    return _check_row
