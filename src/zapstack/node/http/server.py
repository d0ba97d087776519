"""The node's HTTP server: one aiohttp application on the node's own event loop.

Contract
--------
* :class:`NodeHttp` serves one :class:`aiohttp.web.Application` on
  ``host:port`` (loopback unless the operator configures another host).  Its
  routes come from *route tables*: callables ``node -> list[RouteDef]``
  (:data:`ROUTE_TABLES`), each owned by one module (``ops``: ``/health`` and
  ``/metrics``; ``explorer``: ``/`` and ``/explorer``; the JSON API adds its own).
* Every error leaves as JSON ``{"error": {"code": <str>, "message": <str>}}``
  with its 4xx/5xx status (:func:`json_errors`); a handler raises
  :class:`ApiError` (or an aiohttp ``HTTPException``) to answer one.  An
  unexpected exception is logged and answered 500, never a traceback.
* A request body over :data:`MAX_BODY` bytes is refused 413 before it is read.
* :meth:`NodeHttp.start` binds (``OSError`` if the port is taken);
  :meth:`NodeHttp.close` is idempotent and bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from zapstack.node.node import Node

__all__ = ["MAX_BODY", "ROUTE_TABLES", "ApiError", "NodeHttp", "RouteTable", "json_errors"]

log = logging.getLogger("zapstack.node.http")

MAX_BODY = 256 * 1024
"""Largest request body accepted (a tx frame is far smaller)."""

RouteTable = Callable[["Node"], Sequence[web.AbstractRouteDef]]
"""One module's routes, given the node they serve."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer other than 2xx: ``status``, a short machine ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as JSON with its status (see the module contract)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(error_body(exc.code, exc.message), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return web.json_response(error_body(code, exc.text or exc.reason), status=exc.status)
    except Exception:
        log.exception("HTTP %s %s failed", request.method, request.path)
        return web.json_response(error_body("internal", "internal error"), status=500)


def _ops_routes(node: Node) -> Sequence[web.AbstractRouteDef]:
    from zapstack.node.http.ops import routes

    return routes(node)


def _api_routes(node: Node) -> Sequence[web.AbstractRouteDef]:
    from zapstack.node.http.api import routes

    return routes(node)


def _explorer_routes(node: Node) -> Sequence[web.AbstractRouteDef]:
    from zapstack.node.http.explorer import routes

    return routes(node)


ROUTE_TABLES: tuple[RouteTable, ...] = (_ops_routes, _api_routes, _explorer_routes)
"""Every route table a node serves, in mounting order."""


class NodeHttp:
    """The HTTP server of one node (see the module contract)."""

    def __init__(
        self,
        node: Node,
        host: str,
        port: int,
        tables: Sequence[RouteTable] = ROUTE_TABLES,
    ) -> None:
        self.node = node
        self.host = host
        self.port = port
        self.app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY)
        for table in tables:
            self.app.add_routes(table(node))
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; ``port`` 0 picks a free port (read it back from ``port``)."""
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = self.runner.addresses[0][1]

    async def close(self) -> None:
        """Stop serving (idempotent)."""
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.cleanup()
