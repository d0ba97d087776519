"""The node's JSON API under ``/v1`` (``docs/api.md`` §4; routes and spec: :mod:`.api_spec`).

Contract
--------
* :func:`routes` is the route table :class:`~zapstack.node.http.server.NodeHttp`
  mounts: one :class:`NodeApi` per node, its handlers registered from
  :data:`~zapstack.node.http.api_spec.OPS`.
* Reads answer from the node's own parts on its event loop: the consensus
  head, the block store (blocks + certs), ZapDB (one MVCC snapshot per
  account read: balance, nonce, proof and the head height all come from the
  same version, whose root is the certified block's ``state_root``), the
  mempool and the :class:`~zapstack.node.txindex.ChainIndex` (rebuilt from
  the block store on a worker thread at the first request that needs it).
* Submits go through the node's TX_SUBMIT service (:mod:`.api_submit`):
  202 admitted, 422 rejected (``error.code`` = the WireCode name), 429 for
  ``RATE_LIMITED``; the body always carries the ``answer`` record.
* Every ``/v1`` request spends a token of its client IP's bucket
  (:class:`~zapstack.node.http.ratelimit.RateLimiter`): 429 with a JSON
  error and ``Retry-After`` when it is empty.  Malformed parameters are 400,
  unknown blocks 404, all as JSON errors (:mod:`.server`).
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from zapstack.errors import WireCode
from zapstack.node.http.api_events import BlockEvents
from zapstack.node.http.api_spec import OPS, openapi, route_defs
from zapstack.node.http.api_submit import HttpSubmitter
from zapstack.node.http.api_views import account_json, block_json, tx_json
from zapstack.node.http.ratelimit import RateLimiter
from zapstack.node.http.server import ApiError, error_body
from zapstack.verify import account_key
from zapstack.verify.executor import HEAD_HEIGHT_META
from zapstack.zap.frames import parse_block

if TYPE_CHECKING:
    from zapstack.node.node import Node

__all__ = ["ApiConfig", "NodeApi", "routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_U64 = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Limits of the JSON API."""

    rate: float = 50.0
    """Requests per second each client IP may sustain."""
    burst: int = 100
    """Requests a quiet client IP may make at once."""
    submit_timeout: float = 10.0
    """Longest wait for a submit's answer (only when the receiver is out of credit)."""
    max_subscribers: int = 64
    """Block subscriptions open at once."""


def _hex32(value: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ApiError(400, f"bad_{what}", f"{what} must be 32 bytes as 64 hex digits")
    return raw


def _frame(body: bytes, content_type: str) -> bytes:
    """The tx frame of a submit body: binary, ``{"tx": hex}`` or hex text."""
    if content_type == "application/octet-stream":
        frame = body
    else:
        text: Any = body.decode("utf-8", "replace")
        if content_type == "application/json":
            try:
                text = json.loads(text).get("tx")
            except (ValueError, AttributeError):
                text = None
            if not isinstance(text, str):
                raise ApiError(400, "bad_body", 'a JSON body is {"tx": "<hex>"}')
        text = text.strip().removeprefix("0x")
        try:
            frame = bytes.fromhex(text)
        except ValueError:
            raise ApiError(400, "bad_hex", "the body is not a hex tx frame") from None
    if not frame:
        raise ApiError(400, "empty_body", "no tx frame in the body")
    return frame


class NodeApi:
    """The ``/v1`` handlers of one node (see the module contract)."""

    def __init__(self, node: Node, config: ApiConfig | None = None) -> None:
        self.node = node
        self.config = config or ApiConfig()
        self.index = node.txindex
        self.limiter = RateLimiter(self.config.rate, self.config.burst)
        self.submitter = HttpSubmitter(node.txsvc)
        self.events = BlockEvents(
            self.index,
            self._render,
            lambda: node.executor.height,
            max_subscribers=self.config.max_subscribers,
        )

    def handlers(self) -> dict[str, Handler]:
        """op id -> rate-limited handler."""
        plain: dict[str, Handler] = {
            "status": self.status,
            "genesis": self.genesis,
            "block": self.block,
            "tx": self.tx,
            "submit": self.submit,
            "account": self.account,
            "events": self.events.stream,
            "openapi": self.openapi,
        }
        return {name: self._limited(h) for name, h in plain.items()}

    def _limited(self, handler: Handler) -> Handler:
        async def limited(request: web.Request) -> web.StreamResponse:
            client = request.remote or "unknown"
            if not self.limiter.take(client, time.monotonic()):
                wait = max(1, round(self.limiter.retry_after(client) + 0.5))
                body = error_body("rate_limited", f"too many requests; retry in {wait} s")
                return web.json_response(body, status=429, headers={"Retry-After": str(wait)})
            return await handler(request)

        return limited

    async def _ready(self) -> None:
        if not self.index.rebuilt:
            node = self.node
            await node.run_blocking(self.index.rebuild, node.blocks, node.executor.height)

    def _render(self, height: int, with_bytes: bool = False) -> dict[str, Any] | None:
        block = self.node.blocks.block(height)
        if block is None:
            return None
        cert = self.node.blocks.cert(height)
        return block_json(self.node.g.policy, block, cert, with_bytes=with_bytes)

    # ---------------------------------------------------------------- handlers
    async def status(self, _: web.Request) -> web.Response:
        node = self.node
        return web.json_response({
            "chain_id": node.g.chain_id,
            "genesis_id": node.g.genesis_id.hex(),
            "node_index": node.me,
            "height": node.executor.height,
            "head": node.executor.head.hex(),
            "state_root": node.db.root().hex(),
            "round": node.consensus.round,
            "mempool": len(node.mempool),
            "peers": node.conns.connected(),
            "halted": node.consensus.halted or node.fatal is not None,
            "catching_up": node.sync.catching_up or node.needs_sync,
            "state_sync": node.sync.progress(),
        })  # fmt: skip

    async def genesis(self, _: web.Request) -> web.Response:
        return web.json_response(self.node.g.raw)

    async def openapi(self, _: web.Request) -> web.Response:
        return web.json_response(openapi(OPS))

    async def block(self, request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        if ref == "latest":
            height: int | None = self.node.executor.height
        elif ref.isdecimal() and len(ref) <= 20:
            height = int(ref)
        elif len(ref) == 64:
            await self._ready()
            height = self.index.height_of(_hex32(ref, "block_id"))
        else:
            raise ApiError(400, "bad_ref", "a block is a height, `latest` or a 64-hex block id")
        doc = None if height is None else self._render(height, request.query.get("bytes") == "1")
        if doc is None:
            raise ApiError(404, "unknown_block", f"no finalized block {ref}")
        return web.json_response(doc)

    async def tx(self, request: web.Request) -> web.Response:
        tx_id = _hex32(request.match_info["tx_id"], "tx_id")
        await self._ready()
        out: dict[str, Any] = {"tx_id": tx_id.hex()}
        where = self.index.inclusion(tx_id)
        pending = self.node.mempool.get(tx_id)
        rejection = self.index.rejection(tx_id)
        block = None if where is None else self.node.blocks.block(where.height)
        if where is not None and block is not None:
            tx = parse_block(block, verify_signatures=False).tx(where.index)
            out.update(status="included", height=where.height, index=where.index,
                       block_id=where.block_id.hex(), result="applied", tx=tx_json(tx))  # fmt: skip
        elif pending is not None:
            out.update(status="pending", tx=tx_json(pending))
        elif rejection is not None:
            out.update(status="rejected", code=rejection.code.name, reason=rejection.reason)
        else:
            out.update(status="unknown")
        return web.json_response(out)

    async def account(self, request: web.Request) -> web.Response:
        acct = _hex32(request.match_info["account"], "account")
        key = account_key(acct)
        view = self.node.db.read()  # one snapshot: height, root, value, proof agree
        try:
            head = view.meta_get(HEAD_HEIGHT_META)
            if head is None:
                raise ApiError(503, "no_state", "the node has no state yet (state sync running)")
            height = _U64.unpack(head)[0]
            root, value, proof = view.root(), view.get(key), view.prove(key)
        finally:
            view.close()
        blocks = self.node.blocks
        block, cert = (blocks.block(height), blocks.cert(height)) if height else (None, None)
        doc = account_json(
            acct, key, value, proof, height=height, state_root=root, block=block, cert=cert
        )
        return web.json_response(doc)

    async def submit(self, request: web.Request) -> web.Response:
        frame = _frame(await request.read(), request.content_type)
        client = request.remote or "unknown"
        try:
            answer = await self.submitter.submit(client, frame, timeout=self.config.submit_timeout)
        except TimeoutError:
            raise ApiError(503, "timeout", "no answer from the tx pipeline in time") from None
        if not answer.admitted and answer.tx_id:
            self.index.rejected(answer.tx_id, answer.code, answer.code.name)
        doc: dict[str, Any] = {
            "answer": {
                "code": answer.code.name,
                "admitted": answer.admitted,
                "tx_id": answer.tx_id.hex(),
                "credit": answer.credit,
                "account_nonce": answer.account_nonce,
            }
        }
        if answer.admitted:
            return web.json_response(doc, status=202)
        stage = "stage 5" if answer.tx_id else "stages 1-4 (not a valid tx frame)"
        doc.update(error_body(answer.code.name, f"rejected at {stage}: {answer.code.name}"))
        status = 429 if answer.code is WireCode.RATE_LIMITED else 422
        return web.json_response(doc, status=status)


def routes(node: Node, config: ApiConfig | None = None) -> Sequence[web.AbstractRouteDef]:
    """The ``/v1`` route table of ``node`` (a :data:`~.server.RouteTable`)."""
    return route_defs(OPS, NodeApi(node, config).handlers())
