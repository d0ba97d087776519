"""The end-to-end row built from a hand-made report (no devnet)."""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.console import Console

from zapstack.benchmarks import e2e, e2e_row
from zapstack.benchmarks.e2e_stats import Ceiling


def _run(label: str, offered: float, finalized: float, p99: float) -> e2e.LoadRun:
    run = e2e.LoadRun(label, offered, 10.0, 20.0, 1)
    run.figures = {
        "offered_tx_s": offered,
        "submitted_tx_s": offered,
        "new_tx_s": offered * 0.9,
        "admitted_tx_s": offered * 0.5,
        "rejected": {"RATE_LIMITED": 7, "MEMPOOL_FULL": 2},
        "failed": 3,
        "load_processes": 1,
        "finalized_tx_s": finalized,
        "latency_txs": 100,
        "sent_not_final": 0,
        "p50_s": p99 / 2,
        "p99_s": p99,
        "pq_fast_ms": 200.0,
        "pq_heavy_ms": None,
        "heights": 5,
    }
    return run


def _report() -> e2e.Report:
    report = e2e.Report(e2e.QUICK_PLAN, Ceiling(8000.0, 2, 4, 1), capacity=400.0)
    report.ramp = [_run("ramp 100", 100, 90, 1.0)]
    report.loads = [
        _run("1x", 400, 400, 2.0),
        _run("3x", 1200, 380, 3.0),
        _run("10x", 4000, 300, 4.0),
    ]
    report.fixed = [_run("4000/s", 4000, 350, 5.0)]
    report.agreed_live = report.agreed_offline = True
    report.seconds = 100.0
    return report


def test_row_compares_overload_with_capacity_under_the_ceiling(
    check_row: Callable[..., None],
) -> None:
    row = e2e_row.row(_report())
    check_row(row, "e2e_devnet", "tx/s")
    assert row.serial == 400 and row.pipelined == 300
    assert math.isclose(row.ratio, 0.75)  # 300 finalized at 10x over 400 at 1x
    assert row.native_limit == 2000.0  # 8000 verifies/s over 4 checks per tx
    assert "4 checks per tx" in row.native_label
    x = row.extras
    assert x["x10_rejected"] == 9 and x["x10_no_answer"] == 3 and x["x3_p99_s"] == 3.0
    assert math.isclose(x["x10_ratio_to_ceiling"], 0.15)
    assert x["agreed"] == 1.0 and x["light_pq_fast_ms"] == 200.0
    assert "x1_pq_heavy_ms" not in x  # never reached: no figure, not a zero
    assert x["o4000_finalized_tx_s"] == 350 and x["o4000_p99_s"] == 5.0


def test_render_prints_one_line_per_load() -> None:
    console = Console(record=True, width=220)
    e2e_row.render(_report(), console)
    text = console.export_text()
    for label in ("ramp 100", "1x", "3x", "10x", "4000/s"):
        assert label in text
    assert "RATE_LIMITED" in text and "ceiling 2,000 tx/s" in text
    assert "10x: finalized / ceiling = 0.150" in text
