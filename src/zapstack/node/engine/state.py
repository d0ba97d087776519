"""The consensus engine's shared vocabulary: its IO port, its records, its tier helpers.

Contract
--------
* :class:`Io` is everything the engine asks of its driver (clock, worker
  threads -- the critical path's and the background's, apart --, sending); the
  asyncio :class:`~zapstack.node.node.Node` implements it, the in-process test
  network fakes it.
* :class:`HeightRecord` is what a node saw of one finalized height (status,
  live view, metrics); :class:`Aggregation` is the proposer's state for one
  (height, round) it aggregates.  Both are plain mutable dataclasses owned by
  the single :class:`~zapstack.node.engine.core.Consensus` that created them;
  nothing here is shared across threads.
* :func:`tier_name` and :func:`present_legs` read a cert's tier the same way
  for every phase.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.digest import LegId
from zapstack.consensus.policy import CertPolicy, observed_tier
from zapstack.consensus.round import ConsensusRound
from zapstack.node.wire import MsgType

__all__ = ["STAGES", "Aggregation", "HeightRecord", "Io", "log", "present_legs", "tier_name"]

log = logging.getLogger("zapstack.node.consensus")
"""One logger for every phase (operators filter on this name: docs/operations.md)."""


class Io(Protocol):
    """What the consensus core needs from its driver."""

    def now_ms(self) -> int:
        """Monotonic milliseconds."""
        ...

    def wall_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch (block timestamps only)."""
        ...

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking work of the critical path off the event loop (a worker thread):
        build, receive, commit, FINAL verify, the legs."""
        ...

    async def run_background(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking work nobody waits for (Corona round 1 ahead, cert upgrades) on
        threads of its own: it never queues ahead of :meth:`run`'s work."""
        ...

    def send(self, to: int, msg: MsgType, height: int, round_: int, payload: bytes) -> None:
        """Send one message to validator ``to`` (to ourselves: deliver locally)."""
        ...

    def broadcast(self, msg: MsgType, height: int, round_: int, payload: bytes) -> None:
        """Send one message to every validator, ourselves included."""
        ...


@dataclass(slots=True)
class HeightRecord:
    """What this node saw of one finalized height (status, live view, metrics)."""

    height: int
    round: int
    block_id: str
    txs: int
    proposer: int
    tier: str
    state_root: str = ""
    """The block's post-state root (every validator checked it on apply)."""
    legs_ms: dict[str, int] = field(default_factory=dict)
    """Leg -> ms after the round started when it aggregated (aggregator only)."""
    finalized_ms: int = 0
    """ms after the round started when it was final (aggregator only)."""
    stages_ms: dict[str, int] = field(default_factory=dict)
    """Where this node's time in the height went (every node): stage -> ms after it
    entered the height (its commit of the one before), for the stages it saw, in
    :data:`STAGES` order: ``proposal`` (ours sent, or the proposer's in), ``executed``
    (checked and run on a speculative branch), ``voted`` (our last leg share sent),
    ``final`` (FINAL in), ``committed`` (stored; the next height starts).  A later
    round's stage replaces an earlier one's."""


STAGES = ("proposal", "executed", "voted", "final", "committed")
"""A height's stages as each node times them (:attr:`HeightRecord.stages_ms`)."""


@dataclass(slots=True)
class Aggregation:
    """The aggregator's state for one (height, round)."""

    round: ConsensusRound
    block: bytes
    started_ms: int
    record: HeightRecord | None = None
    final_sent: bool = False
    legs: dict[str, int] = field(default_factory=dict)
    """Leg label -> ms after the round start when it aggregated (-1: failed)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held around every call into ``round`` (and the events it returns): the
    round is single-threaded, and its calls run on worker threads from two tasks
    (the message loop and the tick loop)."""


def tier_name(policy: CertPolicy, present: set[LegId] | frozenset[LegId]) -> str:
    """The observed tier of a set of present legs under ``policy`` ("none" below any)."""
    tier = observed_tier(policy.variant, present)
    return tier.value if tier is not None else "none"


def present_legs(cert: cert_mod.QuasarCert) -> set[LegId]:
    """The legs whose field is filled in ``cert``."""
    return {leg for leg in LegId if cert.field(leg)}
