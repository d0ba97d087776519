"""The result of one row of the LP-0202 performance table, and timing helpers.

Every row module (:mod:`.txadmit`, :mod:`.verify`, :mod:`.consensus`,
:mod:`.speculation`, :mod:`.backup`) measures its pipelined figure and its
serial baseline *in the same run, in the same process, on the same input*
and returns one :class:`RowResult`.  ``ratio`` is always "how many times
better the pipelined path is": ``pipelined / serial`` for a rate (higher is
better), ``serial / pipelined`` for a time (lower is better).

Figures are whatever this box measured; nothing is scaled or extrapolated to
the spec's 16-core machine.  ``cores`` records what the run had.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RowResult", "cores", "interleaved", "median_time", "rate_ratio", "time_ratio"]


def cores() -> int:
    """CPU cores this process may run on (affinity), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def median_time(fn: Callable[[], object], repeat: int, *, warm: bool = True) -> float:
    """Median wall seconds of ``fn()`` over ``repeat`` runs (after one warm-up run)."""
    if warm:
        fn()
    samples = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def interleaved(fns: Mapping[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median wall seconds of each function, timed in turns (a, b, a, b, ...).

    Taking turns spreads the shared box's load drift over every contender
    instead of biasing whichever ran during a busy spell.  No warm-up here.
    """
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeat)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(s) for name, s in samples.items()}


def rate_ratio(pipelined: float, serial: float) -> float:
    """Win for a rate (higher is better)."""
    return pipelined / serial


def time_ratio(pipelined: float, serial: float) -> float:
    """Win for a duration (lower is better)."""
    return serial / pipelined


@dataclass(frozen=True, slots=True)
class RowResult:
    """One row of the performance table, measured in one run."""

    key: str
    """Stable machine name of the row (``tx_admit``, ``block_verify``, ...)."""
    op: str
    """The spec's "Op" column, with the size actually run."""
    serial_label: str
    """What the serial baseline did."""
    pipelined_label: str
    """What the pipelined / parallel path did."""
    serial: float
    """Baseline figure, in ``unit``."""
    pipelined: float
    """Pipelined figure, in ``unit``."""
    unit: str
    """Unit of both figures (``tx/s``, ``ms``, ``MB/s``)."""
    higher_is_better: bool
    """True for rates, False for durations."""
    ratio: float
    """How many times better the pipelined figure is (always > 1 means a win)."""
    spec_win: str
    """The spec's "Win" column (measured on a 16-core M4 Max, not here)."""
    native_limit: float | None = None
    """The raw-library bound for the pipelined figure on this box, in ``unit``."""
    native_label: str = ""
    """What ``native_limit`` measured."""
    notes: str = ""
    """Caveats that a reader of the figure needs (what is emulated, what is not)."""
    extras: Mapping[str, float] = field(default_factory=dict)
    """Further figures of the same run, by name (units in the name)."""
    seconds: float = 0.0
    """Wall seconds the whole row took, set-up included."""

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``perf.json`` (field order kept)."""
        return {
            "key": self.key,
            "op": self.op,
            "serial_label": self.serial_label,
            "pipelined_label": self.pipelined_label,
            "serial": self.serial,
            "pipelined": self.pipelined,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "ratio": self.ratio,
            "spec_win": self.spec_win,
            "native_limit": self.native_limit,
            "native_label": self.native_label,
            "notes": self.notes,
            "extras": dict(self.extras),
            "seconds": self.seconds,
        }
