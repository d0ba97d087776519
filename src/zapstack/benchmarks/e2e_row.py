"""The end-to-end measurement as a row of ``zap bench``, its per-load table and its CLI.

* :func:`row` turns a :class:`~zapstack.benchmarks.e2e.Report` into the
  table's :class:`~zapstack.benchmarks.result.RowResult`: "serial baseline" is
  finalized tx/s offered 1x capacity, "pipeline" is finalized tx/s offered
  the highest multiple (10x), their ratio is how much of its at-capacity
  throughput the devnet keeps when overloaded, and the native limit is the
  verify-bound ceiling; every per-load figure goes in ``extras``;
* :func:`render` prints one line per offered load;
* :func:`main` (``bench/bench_e2e.py [--quick] [--out DIR]``) runs it alone,
  prints the table and writes ``DIR/e2e.json``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from zapstack.benchmarks.e2e import FULL_PLAN, QUICK_PLAN, Plan, Report, measure
from zapstack.benchmarks.result import RowResult, rate_ratio

__all__ = ["main", "render", "row", "run"]

_NUMBERS = (
    "offered_tx_s",
    "submitted_tx_s",
    "new_tx_s",
    "admitted_tx_s",
    "finalized_tx_s",
    "p50_s",
    "p99_s",
    "admitted_p50_s",
    "admitted_p99_s",
    "pq_fast_ms",
    "pq_heavy_ms",
)


def _extras(report: Report) -> dict[str, float]:
    out: dict[str, float] = {
        "capacity_tx_s": report.capacity,
        "verifies_per_s": report.ceiling.verifies_per_s,
        "checks_per_tx": float(report.ceiling.checks_per_tx),
        "agreed": float(report.agreed_live and report.agreed_offline),
    }
    light = report.ramp[0].figures if report.ramp else {}
    for name in ("pq_fast_ms", "pq_heavy_ms", "finalized_tx_s"):
        if light.get(name) is not None:
            out[f"light_{name}"] = float(light[name])
    tags = [("x" + r.label.removesuffix("x"), r) for r in report.loads]
    tags += [("o" + r.label.removesuffix("/s"), r) for r in report.fixed]
    for tag, run in tags:
        for name in _NUMBERS:
            if run.figures.get(name) is not None:
                out[f"{tag}_{name}"] = float(run.figures[name])
        out[f"{tag}_rejected"] = float(sum(run.figures["rejected"].values()))
        out[f"{tag}_no_answer"] = float(run.figures["failed"])
        out[f"{tag}_ratio_to_ceiling"] = run.figures["finalized_tx_s"] / report.ceiling.tx_per_s
        for stage, ms in run.figures.get("stages_ms", {}).items():
            out[f"{tag}_stage_{stage}_ms"] = float(ms)
    return out


def row(report: Report) -> RowResult:
    """The ``zap bench`` row of one measurement (see the module docstring)."""
    if len(report.loads) < 2:
        raise RuntimeError("the end-to-end run measured fewer than two loads")
    base, top = report.loads[0], report.loads[-1]
    c = report.ceiling
    at, over = base.figures["finalized_tx_s"], top.figures["finalized_tx_s"]
    return RowResult(
        key="e2e_devnet",
        op=f"End-to-end devnet ({report.plan.validators} validators, QUIC, 127.0.0.1)",
        serial_label=f"finalized, offered {base.label} capacity ({base.offered:,.0f} tx/s)",
        pipelined_label=f"finalized, offered {top.label} capacity ({top.offered:,.0f} tx/s)",
        serial=max(at, 1e-9),
        pipelined=max(over, 1e-9),
        unit="tx/s",
        higher_is_better=True,
        ratio=rate_ratio(max(over, 1e-9), max(at, 1e-9)),
        spec_win="none (not in LP-0202's table)",
        native_limit=c.tx_per_s,
        native_label=(
            f"verify-bound: {c.verifies_per_s:,.0f} verifies/s on {c.cores} threads "
            f"/ {c.checks_per_tx} checks per tx"
        ),
        notes=(
            f"capacity {report.capacity:,.0f} tx/s from a ramp; validators agree: "
            f"{'yes' if report.agreed_live and report.agreed_offline else 'NO'}; "
            "win = finalized at overload / at capacity"
        ),
        extras=_extras(report),
        seconds=report.seconds,
    )


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def render(report: Report, console: Console) -> None:
    """One line per offered load, then the ceiling and the agreement."""
    table = Table(title="end-to-end devnet, per offered load (steady window)")
    cols = ["load", "offered", "submits/s", "new tx/s", "admitted/s", "rejected", "no answer"]
    cols += ["finalized/s", "p50 s", "p99 s", "adm p50 s", "adm p99 s"]
    cols += ["->PQ-fast ms", "->PQ-heavy ms", "procs"]
    for col in cols:
        table.add_column(col, justify="right")
    for run in [*report.ramp, *report.loads, *report.fixed]:
        f = run.figures
        table.add_row(
            run.label,
            _fmt(f["offered_tx_s"], ",.0f"),
            _fmt(f["submitted_tx_s"], ",.0f"),
            _fmt(f["new_tx_s"], ",.0f"),
            _fmt(f["admitted_tx_s"], ",.0f"),
            json.dumps(f["rejected"]) if f["rejected"] else "0",
            str(f["failed"]),
            _fmt(f["finalized_tx_s"], ",.0f"),
            _fmt(f["p50_s"], ".2f"),
            _fmt(f["p99_s"], ".2f"),
            _fmt(f.get("admitted_p50_s"), ".2f"),
            _fmt(f.get("admitted_p99_s"), ".2f"),
            _fmt(f["pq_fast_ms"], ".0f"),
            _fmt(f["pq_heavy_ms"], ".0f"),
            str(f["load_processes"]),
        )
    console.print(table)
    c = report.ceiling
    console.print(
        f"capacity {report.capacity:,.0f} tx/s; verify-bound ceiling {c.tx_per_s:,.0f} tx/s "
        f"({c.verifies_per_s:,.0f} verifies/s on {c.cores} threads / {c.checks_per_tx} "
        f"checks per tx); validators agree: live {report.agreed_live}, "
        f"data dirs {report.agreed_offline} (height {report.final_height}); "
        f"{report.seconds:.0f} s"
    )
    for run in [*report.loads, *report.fixed]:
        ratio = run.figures["finalized_tx_s"] / c.tx_per_s
        console.print(f"  {run.label}: finalized / ceiling = {ratio:.3f}")
    console.print("where a height's time goes (aggregator, median ms after it entered the height):")
    for run in [*report.ramp, *report.loads, *report.fixed]:
        stages = run.figures.get("stages_ms") or {}
        shown = ", ".join(f"{name} {ms:,.0f}" for name, ms in stages.items())
        console.print(f"  {run.label}: {shown or '-'}")
    for p in report.problems:
        console.print(f"[red]{p}[/red]")


def run(plan: Plan, console: Console | None = None) -> RowResult:
    """Measure and return the row (``zap bench``), printing the per-load table."""
    console = console or Console()
    report = measure(plan, log=lambda m: console.print(f"[dim]{m}[/dim]"))
    render(report, console)
    return row(report)


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """``bench/bench_e2e.py``: measure, print, write ``e2e.json``; 0 when it ran."""
    ap = argparse.ArgumentParser(description="End-to-end devnet benchmark at 1x/3x/10x capacity")
    ap.add_argument("--quick", action="store_true", help="about two minutes")
    ap.add_argument("--out", type=Path, default=Path("bench/out"), help="output folder")
    args = ap.parse_args(argv)
    console = console or Console()
    if not console.is_terminal and console.width < 150:
        console.width = 150
    report = measure(
        QUICK_PLAN if args.quick else FULL_PLAN, log=lambda m: console.print(f"[dim]{m}[/dim]")
    )
    render(report, console)
    args.out.mkdir(parents=True, exist_ok=True)
    doc = report.to_json() | {"row": row(report).to_json()}
    (args.out / "e2e.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out / 'e2e.json'}")
    return 0
