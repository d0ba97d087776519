"""/health and /metrics of a node, answered from its parts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Gauge

from zapstack.node.http.ops import routes
from zapstack.node.http.server import NodeHttp


def _node(halted: bool) -> Any:
    registry = CollectorRegistry()
    Gauge("zap_height", "finalized height", registry=registry).set(7)
    return SimpleNamespace(
        metrics=SimpleNamespace(registry=registry),
        consensus=SimpleNamespace(height=8, halted=halted),
        fatal=None,
    )


async def _get(node: Any) -> dict[str, Any]:
    server = NodeHttp(node, "127.0.0.1", 0, tables=[routes])
    await server.start()
    try:
        async with aiohttp.ClientSession(server.url) as s:
            async with s.get("/health") as r:
                health = (r.status, await r.json())
            async with s.get("/metrics") as r:
                metrics = (r.status, await r.text())
    finally:
        await server.close()
    return {"health": health, "metrics": metrics}


def test_health_and_metrics() -> None:
    out = asyncio.run(_get(_node(halted=False)))
    assert out["health"] == (200, {"ok": True, "height": 7, "halted": False})
    status, text = out["metrics"]
    assert status == 200 and "zap_height 7.0" in text


def test_health_of_a_halted_node_is_503() -> None:
    out = asyncio.run(_get(_node(halted=True)))
    assert out["health"][0] == 503 and out["health"][1]["ok"] is False
