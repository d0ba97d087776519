"""The end-to-end run's pure parts; a whole tiny run is a ``soak`` test (real processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zapstack.benchmarks import e2e
from zapstack.benchmarks.e2e import saturated
from zapstack.node.genesis import USER_BALANCE


@pytest.mark.parametrize(
    ("offered", "finalized", "best", "expected"),
    [
        (1000, 700, 500, True),  # under 80 % of the offer
        (1000, 900, 850, True),  # not 10 % better than the step before
        (1000, 900, 500, False),
        (1000, 800, 0, False),  # exactly 80 %
        (4000, 3000, 1200, True),
    ],
)
def test_saturated(offered: float, finalized: float, best: float, expected: bool) -> None:
    assert saturated(offered, finalized, best) is expected


def test_plans_are_ordered_and_quick_is_shorter() -> None:
    for plan in (e2e.FULL_PLAN, e2e.QUICK_PLAN):
        assert list(plan.ramp) == sorted(plan.ramp)
        assert plan.users * USER_BALANCE <= 2**64 - 1  # genesis refuses more
        assert plan.multiples == (1.0, 3.0, 10.0)

    def length(p: e2e.Plan) -> float:
        steps = len(p.ramp) * (p.step_warmup_s + p.step_window_s + 3)
        loads = len(p.multiples) + len(p.fixed)
        return steps + loads * (p.warmup_s + p.window_s + 3)

    assert length(e2e.QUICK_PLAN) < 120 < length(e2e.FULL_PLAN)


@pytest.mark.soak
def test_tiny_run_measures_every_load_and_agrees(tmp_path: Path) -> None:
    plan = e2e.Plan(
        ramp=(50, 150),
        step_warmup_s=1,
        step_window_s=3,
        multiples=(1.0, 3.0),
        fixed=(),
        warmup_s=1,
        window_s=4,
        users=1000,
        drain_s=5,
        verifies=200,
    )
    report = e2e.measure(plan, home=tmp_path, log=lambda _m: None)
    assert report.agreed_live and report.agreed_offline, report.problems
    assert report.capacity > 0 and len(report.loads) == 2
    for run in report.loads:
        f = run.figures
        assert f["finalized_tx_s"] > 0 and f["latency_txs"] > 0
        assert 0 < f["p50_s"] <= f["p99_s"]
        assert f["pq_fast_ms"] is not None and f["pq_fast_ms"] <= f["pq_heavy_ms"]


def test_admitted_latency_counts_from_the_submit_that_got_in(tmp_path: Path) -> None:
    """Tx a, pushed back at t=1 and admitted on its retry at t=4, final at t=6: 5 s from
    its first send, 2 s from its admission (b: 4 s both ways); the merge reads both lists."""
    a, b = bytes([1]) * 32, bytes([2]) * 32
    doc = {
        "window": {"sent": 3, "admitted": 2, "failed": 0, "rejected": {"RATE_LIMITED": 1}},
        "sent": [[a.hex(), 1.0], [b.hex(), 2.0]],
        "admitted": [[a.hex(), 4.0], [b.hex(), 2.0]],
    }
    out = tmp_path / "load.json"
    out.write_text(json.dumps(doc), encoding="utf-8")
    run = e2e.LoadRun("1x", 100.0, 0.0, 10.0, 1)
    e2e._merge(run, [out])
    assert run.admitted == {a: 4.0, b: 2.0} and run.sent == {a: 1.0, b: 2.0}
    e2e._figures(run, {1: 2}, {a: 1, b: 1}, {1: 6.0}, {})
    f = run.figures
    # nearest rank over two txs: p50 = the lower, p99 = the higher
    assert (f["p50_s"], f["p99_s"]) == (4.0, 5.0)  # a: 6 - 1, b: 6 - 2
    assert (f["admitted_p50_s"], f["admitted_p99_s"]) == (2.0, 4.0)  # a: 6 - 4, b: 6 - 2
