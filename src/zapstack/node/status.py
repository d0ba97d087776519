"""A node's status record: what ``status.json``, ``zap devnet`` and the metrics read.

Contract
--------
* :func:`node_status` reads one JSON-ready dict off a running node's parts
  (height, round, head, state root, mempool and reject counts, connected
  validators, consensus counters, the last 20 finalized heights, uptime,
  halt / fatal state, the state-sync record and a running sync's progress, DHT size,
  bootstrap pushes).
  It only reads; it never blocks on IO except ZapDB's root.
* :func:`write_status` replaces ``status.json`` atomically (write a temp
  file, ``os.replace``): a reader sees the old record or the new one, never
  half of one.
* :func:`status_loop` looks at the node every ``STATUS_PERIOD_S`` (0.25 s)
  and rewrites the file only when something a reader sees changed
  (:func:`fingerprint`: height, round, mempool, counters, peers, the newest
  record's tier and legs, halt state, sync) or ``STATUS_REFRESH_S`` (1 s)
  passed since the last write (so ``uptime_s`` and the file's mtime still
  say the node is alive).  A finalized height thus shows within 0.25 s.
  The metrics are not fed from here (:mod:`zapstack.node.metrics` reads the
  node at scrape time and is updated by the node's event hooks).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zapstack.node.config import STATUS_PERIOD_S
from zapstack.node.engine import HeightRecord

STATUS_REFRESH_S = 1.0
"""Longest time between two writes of ``status.json`` when nothing changed."""

if TYPE_CHECKING:
    from zapstack.node.node import Node

__all__ = [
    "STATUS_REFRESH_S",
    "fingerprint",
    "node_status",
    "record_dict",
    "status_loop",
    "write_status",
]


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(HeightRecord))


def record_dict(record: HeightRecord) -> dict[str, Any]:
    """A height record as a JSON-ready dict: ``dataclasses.asdict`` without its deep
    copy (~50x cheaper; the nested values, ``legs_ms`` and ``stages_ms``, are copied)."""
    out = {name: getattr(record, name) for name in _RECORD_FIELDS}
    out["legs_ms"] = dict(record.legs_ms)
    out["stages_ms"] = dict(record.stages_ms)
    return out


def node_status(node: Node) -> dict[str, Any]:
    """The node's status record (see the module contract)."""
    pstats = node.mempool.stats
    rejects = {stage.name: n for stage, n in pstats.rejects_by_stage().items()}
    consensus = node.consensus
    dht = node.dht
    return {
        "index": node.me,
        "pid": os.getpid(),
        "height": consensus.height - 1,
        "round": consensus.round,
        "head": node.executor.head.hex(),
        "state_root": node.db.root().hex(),
        "mempool": len(node.mempool),
        "admitted": pstats.admitted,
        "rejects": rejects,
        "peers": node.conns.connected(),
        "stats": dict(consensus.stats),
        "recent": [record_dict(r) for r in consensus.history[-20:]],
        "uptime_s": round(time.monotonic() - node.started, 1),
        "halted": consensus.halted or node.fatal is not None,
        "fatal": node.fatal or (None if consensus.fatal is None else str(consensus.fatal)),
        "sync": node.sync.stats,
        "state_sync": node.sync.progress(),
        "dht": {
            "contacts": len(dht.node.routing) if dht and dht.node else 0,
            "provided": dht.provided if dht else 0,
        },
        "pushes": node.pusher.pushed,
    }


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Replace ``path`` with ``status`` as JSON, atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status), encoding="utf-8")
    os.replace(tmp, path)


def fingerprint(node: Node) -> tuple[Any, ...]:
    """Cheap values that change whenever the status a reader sees changes (not uptime)."""
    consensus = node.consensus
    pstats = node.mempool.stats
    last = consensus.history[-1] if consensus.history else None
    return (
        consensus.height,
        consensus.round,
        len(node.mempool),
        pstats.admitted,
        pstats.rejected_total,
        tuple(consensus.stats.values()),
        tuple(node.conns.connected()),
        None if last is None else (last.height, last.tier, len(last.legs_ms)),
        consensus.halted,
        node.fatal,
        len(node.sync.stats),
        node.pusher.pushed,
    )


async def status_loop(
    node: Node, clock: Callable[[], float] = time.monotonic, period: float = STATUS_PERIOD_S
) -> None:
    """Keep ``<home>/status.json`` current until cancelled (see the module contract)."""
    path = node.home / "status.json"
    seen: tuple[Any, ...] | None = None
    written = -STATUS_REFRESH_S
    while True:
        now = clock()
        current = fingerprint(node)
        if current != seen or now - written >= STATUS_REFRESH_S:
            write_status(path, node_status(node))
            seen, written = current, now
        await asyncio.sleep(period)
