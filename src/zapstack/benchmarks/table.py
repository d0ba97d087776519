"""Run every row of LP-0202's performance table; print it, write JSON and a PNG chart.

``run_table(sizes)`` runs the rows in order (each measures its
pipelined figure and its serial baseline in the same run) and returns their
:class:`~zapstack.benchmarks.result.RowResult`; a row that raises is reported
as failed and the others still run.  ``render`` prints a rich table with the
host's core count; ``write_json`` and ``write_chart`` save ``perf.json`` and
``perf.png``.  The chart needs matplotlib (a dev extra), imported lazily only
when a chart is drawn; without it the chart is skipped with a message.

Sizes: :data:`FULL` is the spec's (10k txs, 1000-tx blocks, 40 validators,
100k accounts); :data:`QUICK` shrinks the slow ones (``zap bench --quick``).
Entry points: :func:`main` (argv: ``--quick``, ``--validators N``, ``--out
DIR``, ``--only KEY``), used by ``bench/bench_table.py`` and ``zap bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from zapstack.benchmarks import (
    backup,
    consensus,
    e2e,
    e2e_row,
    speculation,
    statebench,
    txadmit,
    txadmit_quic,
    verify,
)
from zapstack.benchmarks.result import RowResult, cores

__all__ = ["FULL", "QUICK", "ROWS", "Sizes", "host_info", "main", "render", "run_table"]

SPEC_MACHINE = "16-core Apple M4 Max (luxd microbenchmarks vs the legacy linearcodec stack)"


@dataclass(frozen=True, slots=True)
class Sizes:
    """Problem sizes of one table run."""

    txs: int = 10_000
    """Tx admit (in-memory and over QUIC): txs admitted."""
    quic_serial_txs: int = 2000
    """Tx admit over QUIC: txs of the serial (receipt-per-tx) phase."""
    block_txs: int = 1000
    """Block verify: txs in the block."""
    validators: int = 40
    """Consensus round: validator count (threshold floor(2n/3)+1)."""
    spec_txs: int = 1000
    """Speculative execution: txs per candidate block."""
    spec_width: int = 3
    """Speculative execution: branches."""
    accounts: int = 100_000
    """State backup: accounts in the state."""
    state_keys: int = 100_000
    """State commit / sync: fresh keys committed (and synced)."""
    state_big: int = 1_000_000
    """State commit: the large store for incremental blocks and the bulk load (0: skip)."""
    repeat: int = 5
    """Repetitions for median timings."""
    e2e_plan: str = "full"
    """End-to-end devnet: ``full`` (about five minutes) or ``quick`` (about two to three)."""


FULL = Sizes()
"""The spec's sizes."""
QUICK = Sizes(
    txs=5000,
    quic_serial_txs=1000,
    validators=16,
    spec_txs=1000,
    accounts=50_000,
    state_keys=50_000,
    state_big=0,
    repeat=3,
    e2e_plan="quick",
)
"""About three minutes on 2 cores, two of them the end-to-end devnet (the full
table: about seven, five of them the devnet)."""
TINY = Sizes(
    txs=200,
    block_txs=64,
    validators=4,
    spec_txs=40,
    spec_width=2,
    accounts=500,
    state_keys=2000,
    state_big=0,
    repeat=1,
    e2e_plan="quick",
)
"""For tests: every row, seconds in all."""

ROWS: dict[str, Callable[[Sizes], RowResult | None]] = {
    "tx_admit": lambda s: txadmit.run(s.txs, repeat=max(1, s.repeat - 2)),
    "tx_admit_quic": lambda s: txadmit_quic.run(s.txs, serial_n=s.quic_serial_txs),
    "block_verify": lambda s: verify.run(s.block_txs, repeat=s.repeat),
    "consensus_round": lambda s: consensus.run(s.validators, repeat=max(1, s.repeat - 2)),
    "speculation": lambda s: speculation.run(s.spec_txs, width=s.spec_width, repeat=s.repeat + 2),
    "state_backup": lambda s: backup.run(s.accounts, repeat=s.repeat),
    "state_commit": lambda s: statebench.run(
        s.state_keys, s.state_big, repeat=max(1, s.repeat - 2)
    ),
    "e2e_devnet": lambda s: e2e_row.run(e2e.QUICK_PLAN if s.e2e_plan == "quick" else e2e.FULL_PLAN),
}
"""Row key -> runner, in the spec's order (a runner returns None: row skipped)."""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_info() -> dict[str, Any]:
    """What ran the table: cores usable, CPU, Python, load."""
    load = os.getloadavg()
    return {
        "cores": cores(),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_avg": [round(x, 2) for x in load],
    }


def run_table(
    sizes: Sizes,
    only: Sequence[str] = (),
    log: Callable[[str], None] = lambda _m: None,
) -> tuple[list[RowResult], dict[str, str]]:
    """Run the rows (all, or ``only``); return (results, errors by row key)."""
    results: list[RowResult] = []
    errors: dict[str, str] = {}
    for key, fn in ROWS.items():
        if only and key not in only:
            continue
        log(f"running {key} ...")
        t0 = time.perf_counter()
        try:
            row = fn(sizes)
        except Exception as exc:  # a failed row must not hide the others
            errors[key] = f"{type(exc).__name__}: {exc}"
            log(traceback.format_exc())
            continue
        if row is None:
            log(f"  {key}: skipped (its bench script is not in this checkout)")
            continue
        results.append(replace(row, seconds=time.perf_counter() - t0))
        log(f"  {key}: done in {time.perf_counter() - t0:.1f} s")
    return results, errors


def _fig(value: float, unit: str) -> str:
    if unit == "ms" and value < 10:
        return f"{value:,.2f} {unit}"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}"


def render(results: Sequence[RowResult], host: dict[str, Any], console: Console) -> None:
    """Print the table (and each row's extras) to ``console``."""
    title = (
        f"LP-0202 performance table -- measured here on {host['cores']} cores "
        f"({host['cpu']}, Python {host['python']})"
    )
    table = Table(title=title, show_lines=True)
    for col in ("Op", "Serial baseline", "Pipeline", "Win here", "Spec win", "Native limit"):
        table.add_column(col, justify="right" if col in ("Win here", "Spec win") else "left")
    for r in results:
        colour = "green" if r.ratio >= 1.5 else "yellow" if r.ratio >= 1.0 else "red"
        limit = (
            "-" if r.native_limit is None else f"{_fig(r.native_limit, r.unit)}\n{r.native_label}"
        )
        table.add_row(
            r.op,
            f"{_fig(r.serial, r.unit)}\n{r.serial_label}",
            f"{_fig(r.pipelined, r.unit)}\n{r.pipelined_label}",
            f"[{colour}]x{r.ratio:.2f}[/{colour}]",
            r.spec_win,
            limit,
        )
    console.print(table)
    console.print(
        f"Spec figures: {SPEC_MACHINE}.  These: {host['cores']} cores of a shared box, "
        f"load {host['load_avg'][0]:.2f} at the end.  Win = how many times better the "
        "pipeline is (rate ratio, or time ratio for durations)."
    )
    for r in results:
        extras = ", ".join(f"{k}={v:,.3g}" for k, v in r.extras.items())
        console.print(f"[dim]{r.key}[/dim] ({r.seconds:.1f} s): {r.notes}. {extras}")


def write_json(
    path: Path,
    results: Sequence[RowResult],
    host: dict[str, Any],
    sizes: Sizes,
    errors: dict[str, str],
) -> None:
    """Write ``perf.json``."""
    doc = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host,
        "sizes": {f: getattr(sizes, f) for f in Sizes.__slots__},
        "spec_machine": SPEC_MACHINE,
        "rows": [r.to_json() for r in results],
        "errors": errors,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def write_chart(path: Path, results: Sequence[RowResult], host: dict[str, Any]) -> bool:
    """Draw ``perf.png`` (matplotlib, imported here); False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return False
    rows = list(results)
    fig, ax = plt.subplots(figsize=(12, 1.1 * len(rows) + 1.8))
    labels = [r.op.replace(" (", "\n(", 1) for r in rows]
    ys = list(range(len(rows)))[::-1]
    h = 0.36
    ratios = [r.ratio for r in rows]
    limits = [
        None
        if r.native_limit is None
        else (r.native_limit / r.serial if r.higher_is_better else r.serial / r.native_limit)
        for r in rows
    ]
    ax.barh([y + h / 2 for y in ys], [1.0] * len(rows), h, label="serial baseline", color="#999")
    ax.barh([y - h / 2 for y in ys], ratios, h, label="pipeline (same run)", color="#2a7")
    for y, lim in zip(ys, limits, strict=True):
        if lim is not None:
            ax.plot([lim, lim], [y - h, y + h], color="#c33", lw=2)
    ax.plot([], [], color="#c33", lw=2, label="native limit on this box")
    top = max([*ratios, *(v for v in limits if v is not None), 2.0]) * 6
    for y, r in zip(ys, rows, strict=True):
        ax.text(
            max(r.ratio, 1.0) * 1.08,
            y - h / 2,
            f"x{r.ratio:.2f}: {_fig(r.pipelined, r.unit)} vs {_fig(r.serial, r.unit)}"
            f"   (spec {r.spec_win})",
            va="center",
            fontsize=8,
        )
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}x"))
    ax.set_xlim(0.25, top)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_xlabel("speed relative to the serial baseline (x, log scale)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(
        f"LP-0202 performance table, pipelined vs serial: {host['cores']} cores "
        f"({host['cpu']}); spec figures from a 16-core M4 Max",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Run the table; print it; write ``perf.json`` / ``perf.png``; return an exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (under a minute)")
    ap.add_argument("--validators", type=int, default=0, help="consensus row validators")
    ap.add_argument("--out", type=Path, default=Path("bench/out"), help="output folder")
    ap.add_argument("--only", action="append", default=[], choices=list(ROWS), help="row key")
    args = ap.parse_args(argv)
    return run_and_report(
        QUICK if args.quick else FULL, args.out, args.only, args.validators, console or Console()
    )


def run_and_report(
    sizes: Sizes,
    out: Path,
    only: Sequence[str] = (),
    validators: int = 0,
    console: Console | None = None,
) -> int:
    """Shared by :func:`main` and ``zap bench``."""
    console = console or Console()
    if not console.is_terminal and console.width < 150:
        console.width = 150  # logs and `make bench`: do not wrap the table at 80 columns
    if validators:
        sizes = replace(sizes, validators=validators)
    console.print(f"zap bench: {cores()} cores, sizes {sizes}")
    results, errors = run_table(sizes, only, log=lambda m: console.print(f"[dim]{m}[/dim]"))
    host = host_info()
    render(results, host, console)
    write_json(out / "perf.json", results, host, sizes, errors)
    console.print(f"wrote {out / 'perf.json'}")
    if write_chart(out / "perf.png", results, host):
        console.print(f"wrote {out / 'perf.png'}")
    else:
        console.print("[yellow]matplotlib not installed: no chart (pip install '.[dev]')[/yellow]")
    for key, err in errors.items():
        console.print(f"[red]row {key} failed:[/red] {err}")
    return 1 if errors else 0
