"""/health, /health/live and /metrics of a node, answered from its parts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Gauge

from zapstack.node.health import PeerHeights
from zapstack.node.http.ops import routes
from zapstack.node.http.server import NodeHttp


def _node(halted: bool = False, connected: tuple[int, ...] = (0, 2)) -> Any:
    registry = CollectorRegistry()
    Gauge("zap_height", "finalized height", registry=registry).set(7)
    vset = SimpleNamespace(n=4, threshold_weight=3, weight_of=lambda ix: len(set(ix)))
    return SimpleNamespace(
        me=1,
        g=SimpleNamespace(vset=vset),
        metrics=SimpleNamespace(registry=registry),
        consensus=SimpleNamespace(height=8, halted=halted),
        conns=SimpleNamespace(connected=lambda: list(connected)),
        sync=SimpleNamespace(catching_up=False, heights=PeerHeights(4, 1)),
        needs_sync=False,
        fatal=None,
    )


async def _get(node: Any) -> dict[str, Any]:
    server = NodeHttp(node, "127.0.0.1", 0, tables=[routes])
    await server.start()
    out: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession(server.url) as s:
            for path in ("/health", "/health/live"):
                async with s.get(path) as r:
                    out[path] = (r.status, await r.json())
            async with s.get("/metrics") as r:
                out["/metrics"] = (r.status, r.content_type, await r.text())
    finally:
        await server.close()
    return out


def test_health_and_metrics() -> None:
    out = asyncio.run(_get(_node()))
    assert out["/health"] == (
        200,
        {
            "ok": True,
            "reasons": [],
            "height": 7,
            "peers_height": None,
            "connected": [0, 2],
            "quorum_weight": 3,
            "weight": 3,
        },
    )
    assert out["/health/live"] == (200, {"live": True, "height": 7})
    status, ctype, text = out["/metrics"]
    assert status == 200 and ctype == "text/plain" and "zap_height 7.0" in text


def test_an_unhealthy_node_is_503_with_its_reasons_but_live() -> None:
    out = asyncio.run(_get(_node(halted=True, connected=(0,))))
    status, body = out["/health"]
    assert status == 503 and body["ok"] is False
    assert body["reasons"] == ["halted", "no_quorum"]
    assert out["/health/live"][0] == 200
