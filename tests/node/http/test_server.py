"""NodeHttp: route tables mounted, errors answered as JSON, body size bounded, close idempotent."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web

from zapstack.node.http.server import MAX_BODY, ApiError, NodeHttp


def _table(node: Any) -> Sequence[web.AbstractRouteDef]:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"node": node})

    async def teapot(_: web.Request) -> web.Response:
        raise ApiError(418, "teapot", "short and stout")

    async def boom(_: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"n": len(await request.read())})

    return [
        web.get("/ok", ok),
        web.get("/teapot", teapot),
        web.get("/boom", boom),
        web.post("/echo", echo),
    ]


async def _exchange() -> dict[str, Any]:
    server = NodeHttp("me", "127.0.0.1", 0, tables=[_table])  # type: ignore[arg-type]
    await server.start()
    out: dict[str, Any] = {"port": server.port}
    try:
        async with aiohttp.ClientSession(server.url) as s:
            for path in ("/ok", "/teapot", "/boom", "/nowhere"):
                async with s.get(path) as r:
                    out[path] = (r.status, await r.json())
            async with s.post("/echo", data=b"x" * 10) as r:
                out["small"] = (r.status, await r.json())
            async with s.post("/echo", data=b"x" * (MAX_BODY + 1)) as r:
                out["big"] = (r.status, await r.json())
    finally:
        await server.close()
        await server.close()
    return out


def test_routes_errors_and_limits() -> None:
    out = asyncio.run(_exchange())
    assert out["port"] > 0
    assert out["/ok"] == (200, {"node": "me"})
    assert out["/teapot"] == (418, {"error": {"code": "teapot", "message": "short and stout"}})
    assert out["/boom"] == (500, {"error": {"code": "internal", "message": "internal error"}})
    status, body = out["/nowhere"]
    assert status == 404 and body["error"]["code"] == "not_found"
    assert out["small"] == (200, {"n": 10})
    status, body = out["big"]
    assert status == 413 and body["error"]["code"] == "request_entity_too_large"
