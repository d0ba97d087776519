"""The arithmetic of the end-to-end row: finality times, steady rates, latencies, the ceiling.

Pure functions over plain numbers (times are ``time.monotonic()`` seconds, the
clock every process on the box shares); :mod:`.e2e` feeds them what it saw of
a running devnet.  Definitions, stated once:

* **final time of a height** -- the first moment any validator was seen
  (a ``status.json`` poll) at that height or above (:func:`final_times`);
* **steady finalized rate** -- txs in the blocks whose final time falls in
  the window ``[start, end)``, divided by ``end - start`` (:func:`window_rate`);
* **submit -> final latency** -- a tx's final time (that of the height holding
  it) minus its first send by the load generator; only txs first sent inside
  the window and finalized by the end count (:func:`latencies`);
* **percentile** -- nearest rank: the smallest sample with at least ``q`` %
  of the samples at or below it (:func:`percentile`);
* **tier time** -- the ms after the round started by which every leg a tier
  needs had aggregated, i.e. the latest of them; None when one is missing or
  failed (:func:`tier_ms`);
* **verify-bound ceiling** -- signature verifies/s on the cores used, divided
  by the signature checks one tx costs across the validators
  (:func:`verify_ceiling`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "Ceiling",
    "final_times",
    "latencies",
    "median_or_none",
    "percentile",
    "stage_medians",
    "tier_ms",
    "verify_ceiling",
    "window_rate",
]


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``.

    Raises ValueError on no values or a ``q`` out of range.
    """
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is not in (0, 100]")
    rank = math.ceil(q / 100 * len(xs))
    return xs[rank - 1]


def median_or_none(values: Iterable[float]) -> float | None:
    """The median of ``values`` (mean of the middle two), None when there are none."""
    xs = list(values)
    return statistics.median(xs) if xs else None


def stage_medians(stages: Iterable[Mapping[str, int]]) -> dict[str, float]:
    """Stage -> median ms over the heights that timed it (each height's
    ``stages_ms``: ms after its node entered the height), in the order first seen."""
    seen: dict[str, list[int]] = {}
    for per_height in stages:
        for stage, ms in per_height.items():
            seen.setdefault(stage, []).append(ms)
    return {stage: float(statistics.median(ms)) for stage, ms in seen.items()}


def final_times(observations: Iterable[tuple[float, int]]) -> dict[int, float]:
    """Height -> first time it was seen final, from ``(time, height)`` observations.

    An observation ``(t, h)`` says "at ``t`` some validator had finalized up to
    ``h``", so every height ``<= h`` not seen before is final at ``t`` too.
    Heights from 1; observations in any order.
    """
    out: dict[int, float] = {}
    top = 0
    for t, h in sorted(observations):
        for height in range(top + 1, h + 1):
            out[height] = t
        top = max(top, h)
    return out


def window_rate(
    blocks: Mapping[int, int], final_at: Mapping[int, float], start: float, end: float
) -> float:
    """Txs per second finalized in ``[start, end)``.

    ``blocks``: height -> tx count; ``final_at``: height -> final time.
    """
    if end <= start:
        raise ValueError("empty window")
    txs = sum(n for h, n in blocks.items() if h in final_at and start <= final_at[h] < end)
    return txs / (end - start)


def latencies(
    sent_at: Mapping[bytes, float],
    tx_height: Mapping[bytes, int],
    final_at: Mapping[int, float],
    start: float,
    end: float,
) -> tuple[list[float], int]:
    """Submit -> final seconds of the txs first sent in ``[start, end)``.

    ``sent_at``: tx id -> first send; ``tx_height``: tx id -> the height that
    holds it.  Returns (latencies of those finalized, count of those not).  A tx
    whose height was final before this send (a client resending a frame the chain
    already holds) has no submit -> final time and counts in neither.
    """
    done: list[float] = []
    missing = 0
    for tx, t in sent_at.items():
        if not start <= t < end:
            continue
        h = tx_height.get(tx)
        if h is None or h not in final_at:
            missing += 1
        elif final_at[h] >= t:
            done.append(final_at[h] - t)
    return done, missing


def tier_ms(legs_ms: Mapping[str, int], legs: Iterable[str]) -> int | None:
    """When all of ``legs`` had aggregated (ms after round start); None if one never did."""
    times = [legs_ms.get(leg) for leg in legs]
    if any(t is None or t < 0 for t in times):
        return None
    return max(t for t in times if t is not None)


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The verify-bound ceiling of a devnet on this box."""

    verifies_per_s: float
    """Tx signature verifies per second, the node's verifier on ``cores`` threads."""
    cores: int
    """Threads (one per usable core) the verifies ran on."""
    validators: int
    """Validators that each check every tx."""
    checks_per_validator: int
    """Signature checks of one tx at one validator (1 with the verified-signature cache)."""

    @property
    def checks_per_tx(self) -> int:
        """Signature checks one tx costs across all the validators."""
        return self.validators * self.checks_per_validator

    @property
    def tx_per_s(self) -> float:
        """Finalized tx/s the box could reach if verifying were all it did."""
        return verify_ceiling(self.verifies_per_s, self.validators, self.checks_per_validator)


def verify_ceiling(verifies_per_s: float, validators: int, checks_per_validator: int = 1) -> float:
    """Verifies/s divided by the checks per tx (``validators * checks_per_validator``)."""
    if validators < 1 or checks_per_validator < 1:
        raise ValueError("a tx costs at least one check")
    return verifies_per_s / (validators * checks_per_validator)
