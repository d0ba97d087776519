"""The block subscription: server-sent events, one ``block`` event per finalized block.

Contract
--------
* ``GET /v1/events/blocks[?from=H]`` answers ``text/event-stream``.  Each
  finalized block is one event ``event: block``, ``id: <height>``,
  ``data: <the block JSON of GET /v1/blocks/{height}>``, in height order,
  without gaps or repeats.  With ``from`` (or a ``Last-Event-ID`` header: a
  reconnecting client resumes after that height) the held blocks from that
  height up to the head are replayed first, then the stream follows live.
* Each subscriber has a bounded queue of ``queue_size`` heights fed by a
  :class:`~zapstack.node.txindex.ChainIndex` listener (on the event loop,
  never blocking).  A subscriber that falls that far behind is closed (its
  client reconnects with ``Last-Event-ID``); at most ``max_subscribers``
  streams are open at once (503 past it).  A comment line is sent every
  ``keepalive`` seconds so a vanished client is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from zapstack.node.http.server import ApiError
from zapstack.node.txindex import ChainIndex

__all__ = ["BlockEvents"]

Render = Callable[[int], "dict[str, Any] | None"]
"""Height -> the block JSON, or None when the node does not hold that block."""

_OVERFLOW = -1


class BlockEvents:
    """Server-sent block events for many subscribers (see the module contract)."""

    def __init__(
        self,
        index: ChainIndex,
        render: Render,
        head: Callable[[], int],
        *,
        max_subscribers: int = 64,
        queue_size: int = 256,
        keepalive: float = 15.0,
    ) -> None:
        self.index = index
        self.render = render
        self.head = head
        self.max_subscribers = max_subscribers
        self.queue_size = queue_size
        self.keepalive = keepalive
        self.subscribers = 0
        """Streams open now."""

    def _start(self, request: web.Request) -> int | None:
        raw = request.query.get("from")
        last = request.headers.get("Last-Event-ID")
        try:
            if raw is not None:
                return max(1, int(raw))
            if last is not None:
                return int(last) + 1
        except ValueError:
            raise ApiError(400, "bad_height", "`from` and Last-Event-ID are heights") from None
        return None

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Serve one subscriber until it leaves, falls behind, or the server stops."""
        start = self._start(request)
        if self.subscribers >= self.max_subscribers:
            raise ApiError(503, "too_many_subscribers", "subscriber limit reached; retry later")
        queue: asyncio.Queue[int] = asyncio.Queue(self.queue_size + 1)

        def listener(height: int, _block: bytes, _cert: bytes) -> None:
            if queue.qsize() >= self.queue_size:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(_OVERFLOW)
                return
            queue.put_nowait(height)

        stop = self.index.listen(listener)  # before the replay: no gap
        self.subscribers += 1
        head = self.head()  # read with the listener attached, before any await
        try:
            response = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            await response.prepare(request)
            sent = head if start is None else await self._replay(response, start, head)
            await self._follow(response, queue, sent)
            return response
        finally:
            stop()
            self.subscribers -= 1

    async def _send(self, response: web.StreamResponse, height: int) -> bool:
        doc = self.render(height)
        if doc is None:
            return False
        data = json.dumps(doc, separators=(",", ":"))
        await response.write(f"event: block\nid: {height}\ndata: {data}\n\n".encode())
        return True

    async def _replay(self, response: web.StreamResponse, start: int, head: int) -> int:
        sent = start - 1
        for height in range(start, head + 1):
            if await self._send(response, height):
                sent = height
        return sent

    async def _follow(
        self, response: web.StreamResponse, queue: asyncio.Queue[int], sent: int
    ) -> None:
        while True:
            try:
                height = await asyncio.wait_for(queue.get(), self.keepalive)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if height == _OVERFLOW:
                await response.write(b"event: overflow\ndata: {}\n\n")
                return
            for h in range(sent + 1, height + 1):  # never a gap, never a repeat
                if await self._send(response, h):
                    sent = h
