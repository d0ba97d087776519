"""Operator routes: ``/health``, ``/health/live`` and ``/metrics``.

Contract
--------
* ``GET /metrics``: the node's Prometheus registry in the text exposition
  format (:mod:`zapstack.node.metrics`).
* ``GET /health``: 200 when the node is healthy by the rule of
  :mod:`zapstack.node.health` (not halted, not state-syncing, not catching up,
  connected to a quorum, within 1 height of its peers), else 503; both with
  the body of :meth:`~zapstack.node.health.Health.body` (``ok``, ``reasons``,
  ``height``, ``peers_height``, ``connected``, ``quorum_weight``, ``weight``).
* ``GET /health/live``: 200 ``{"live": true, "height": h}`` while the
  process serves (its event loop answers), halted or not: a liveness probe
  that restarts nothing merely because the node is catching up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zapstack.node.health import assess

if TYPE_CHECKING:
    from zapstack.node.node import Node

__all__ = ["routes"]


def routes(node: Node) -> Sequence[web.AbstractRouteDef]:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(node.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        verdict = assess(node)
        return web.json_response(verdict.body(), status=200 if verdict.ok else 503)

    async def live(_: web.Request) -> web.Response:
        return web.json_response({"live": True, "height": node.consensus.height - 1})

    return [
        web.get("/metrics", metrics),
        web.get("/health", health),
        web.get("/health/live", live),
    ]
