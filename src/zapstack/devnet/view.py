"""The live view of ``zap devnet``: validators, finalized heights, load, in rich.

:func:`render` turns one poll of the validators' ``status.json`` files into a
:class:`rich.console.Group` of

* a validators table: height, round (or ``halted``), peers, mempool size,
  txs admitted, admits/s, tx streams rejected by stage, state root;
* a finalized-heights table for the last 8 heights: proposer, txs, each leg's
  arrival after the round started (BLS, Pulsar, Corona, Magnetar), when the
  height was final and its cert tier;
* one line on the load generator (txs sent, malformed on purpose, failed).

:class:`AdmitRates` keeps the admits/s column: each validator's ``admitted``
counter is re-sampled at most once a second.  Everything here is pure
formatting over plain dicts and does no IO; the caller polls and draws.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.table import Table

from zapstack.devnet.loadgen import LoadGenerator

__all__ = ["AdmitRates", "render"]

Statuses = dict[int, dict[str, Any] | None]
"""Validator index -> its status.json (None while it is starting)."""

_NODE_COLUMNS = (
    "node",
    "height",
    "round",
    "peers",
    "mempool",
    "admitted",
    "admits/s",
    "rejects by stage",
    "root",
)
_HEIGHT_COLUMNS = (
    "height",
    "proposer",
    "txs",
    "BLS",
    "Pulsar",
    "Corona",
    "Magnetar",
    "final at",
    "tier",
)


class AdmitRates:
    """Admits/s per validator, from its ``admitted`` counter sampled once a second."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.rates: dict[int, float] = {}
        """Validator index -> admits/s over its last sample interval."""
        self._seen: dict[int, tuple[float, int]] = {}

    def update(self, statuses: Statuses, now: float) -> None:
        """Re-sample every validator whose last sample is at least 1 s old."""
        for i, st in statuses.items():
            if st is not None:
                t0, a0 = self._seen.get(i, (self.started, 0))
                if now - t0 >= 1.0:
                    self.rates[i] = (st["admitted"] - a0) / (now - t0)
                    self._seen[i] = (now, st["admitted"])


def render(
    statuses: Statuses,
    load: LoadGenerator,
    started: float,
    rates: dict[int, float],
) -> Group:
    """One frame of the live view (see the module docstring)."""
    nodes, records = _validators(statuses, rates)
    return Group(nodes, _heights(records), _load_line(load, started))


def _validators(
    statuses: Statuses, rates: dict[int, float]
) -> tuple[Table, dict[int, dict[str, Any]]]:
    """The validators table, and the newest record of each recent height."""
    nodes = Table(title="validators", expand=False)
    for col in _NODE_COLUMNS:
        nodes.add_column(col)
    records: dict[int, dict[str, Any]] = {}
    for i, st in sorted(statuses.items()):
        if st is None:
            nodes.add_row(str(i), "starting", "", "", "", "", "", "", "")
            continue
        rejects = " ".join(f"{k}:{v}" for k, v in sorted(st["rejects"].items())) or "-"
        state = "halted" if st.get("halted") else str(st["round"])
        nodes.add_row(
            str(i),
            str(st["height"]),
            state,
            str(len(st["peers"])),
            str(st["mempool"]),
            str(st["admitted"]),
            f"{rates.get(i, 0.0):.0f}",
            rejects,
            st["state_root"][:12],
        )
        for rec in st["recent"]:
            if rec["legs_ms"] or rec["height"] not in records:
                records[rec["height"]] = rec
    return nodes, records


def _ms(rec: dict[str, Any], leg: str) -> str:
    v = rec["legs_ms"].get(leg)
    return "-" if v is None else ("failed" if v < 0 else f"{v} ms")


def _heights(records: dict[int, dict[str, Any]]) -> Table:
    """The last 8 finalized heights: per-leg arrival and tier."""
    heights = Table(title="finalized heights: per-leg arrival after round start, tier")
    for col in _HEIGHT_COLUMNS:
        heights.add_column(col, justify="right")
    for h in sorted(records)[-8:]:
        rec = records[h]
        heights.add_row(
            str(h),
            str(rec["proposer"]),
            str(rec["txs"]),
            _ms(rec, "bls"),
            _ms(rec, "pulsar"),
            _ms(rec, "corona"),
            _ms(rec, "magnetar"),
            f"{rec['finalized_ms']} ms" if rec["finalized_ms"] else "-",
            rec["tier"],
        )
    return heights


def _load_line(load: LoadGenerator, started: float) -> str:
    elapsed = max(time.monotonic() - started, 1e-6)
    return (
        f"load: {load.stats.sent} txs sent ({load.stats.sent / elapsed:.0f}/s), "
        f"{load.stats.malformed} malformed on purpose, {load.stats.failed} failed sends; "
        f"{elapsed:.0f}s elapsed"
    )
