"""A node's status record: what ``status.json``, ``zap devnet`` and the metrics read.

Contract
--------
* :func:`node_status` reads one JSON-ready dict off a running node's parts
  (height, round, head, state root, mempool and reject counts, connected
  validators, consensus counters, the last 20 finalized heights, uptime,
  halt / fatal state, the state-sync record, DHT size, bootstrap pushes).
  It only reads; it never blocks on IO except ZapDB's root.
* :func:`write_status` replaces ``status.json`` atomically (write a temp
  file, ``os.replace``): a reader sees the old record or the new one, never
  half of one.
* :func:`status_loop` refreshes the file and the node's metrics every
  ``STATUS_PERIOD_S`` until cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zapstack.node.config import STATUS_PERIOD_S

if TYPE_CHECKING:
    from zapstack.node.node import Node

__all__ = ["node_status", "status_loop", "write_status"]


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
        "recent": [dataclasses.asdict(r) for r in consensus.history[-20:]],
        "uptime_s": round(time.monotonic() - node.started, 1),
        "halted": consensus.halted or node.fatal is not None,
        "fatal": node.fatal or (None if consensus.fatal is None else str(consensus.fatal)),
        "sync": node.sync.stats,
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


async def status_loop(node: Node) -> None:
    """Refresh ``<home>/status.json`` and the metrics until cancelled."""
    path = node.home / "status.json"
    while True:
        status = node_status(node)
        write_status(path, status)
        node.metrics.update(status)
        await asyncio.sleep(STATUS_PERIOD_S)
