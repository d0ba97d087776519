"""The load process's counters: a window is the difference of two snapshots."""

from __future__ import annotations

from zapstack.benchmarks.e2e_load import _diff, snapshot
from zapstack.devnet.loadgen import LoadStats


def test_window_is_end_minus_start_and_drops_empty_codes() -> None:
    stats = LoadStats(sent=10, admitted=6, failed=1, rejected={"RATE_LIMITED": 3})
    before = snapshot(stats)
    stats.sent, stats.admitted, stats.failed = 25, 15, 1
    stats.rejected["RATE_LIMITED"] = 5
    stats.rejected["MEMPOOL_FULL"] = 4
    after = snapshot(stats)
    assert before["rejected"] == {"RATE_LIMITED": 3}  # a copy, not the live dict
    assert _diff(after, before) == {
        "sent": 15,
        "admitted": 9,
        "failed": 0,
        "rejected": {"RATE_LIMITED": 2, "MEMPOOL_FULL": 4},
    }
    assert _diff(after, after)["rejected"] == {}
