"""Operator routes: ``/health`` and ``/metrics``.

Contract
--------
* ``GET /metrics``: the node's Prometheus registry in the text exposition
  format (:mod:`zapstack.node.metrics`).
* ``GET /health``: 200 ``{"ok": true, ...}`` while the node is live and not
  halted, 503 with the same fields otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from zapstack.node.node import Node

__all__ = ["routes"]


def routes(node: Node) -> Sequence[web.AbstractRouteDef]:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(node.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        halted = node.consensus.halted or node.fatal is not None
        body = {"ok": not halted, "height": node.consensus.height - 1, "halted": halted}
        return web.json_response(body, status=503 if halted else 200)

    return [web.get("/metrics", metrics), web.get("/health", health)]
