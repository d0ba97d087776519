"""STATE_CHUNK and HEADER_RANGE requests answered on a thread of their own, not on the loop.

Contract
--------
:meth:`BootstrapServer.answer_state <zapstack.bootstrap.server.BootstrapServer.answer_state>`
reads and encodes up to ~16 MiB for one request (``bootstrap.md`` §2): tens to hundreds of
milliseconds of CPU.  Run in a stream handler, that is the event loop's time, and the
consensus messages of every peer wait behind it.  :class:`StateServing` collects a
request on the loop (bounded: ``MAX_REQUEST`` bytes), answers it on one worker thread of
its own, and hands the reply (or the refusal's code) back to the stream's connection
(:class:`~zapstack.transport.handler.Responder`) on the loop.

A request the server estimates to read at most ``inline`` entries
(:meth:`~zapstack.bootstrap.server.BootstrapServer.request_entries`: a few milliseconds)
is answered on the loop at once, as before: handing it to the worker and back would cost
more than it saves (measured: a 100k-key sync of 16-chunk requests at depth 10 ran ~20-35%
slower through the worker, the client beside it on 2 cores).

HEADER_RANGE (up to ~16 MiB of block files a reply: measured 23 ms median, 42 ms max for
256 blocks of 64 KiB) takes the same path: its subscriptions are recorded on the loop at
FIN (:meth:`~zapstack.bootstrap.server.BootstrapServer.range_request`, a bad request
refused there), and a request for more than :data:`INLINE_BLOCKS` blocks is read and
encoded on the worker (``range_reply``); a smaller one (a peer's first "latest block"
request, a short gap) is answered at once.

Bounds, checked at the request's FIN, before any work: at most ``per_peer`` requests of
one peer and ``total`` of all peers queued or running (both kinds together), served one
peer at a time in turn (:class:`~zapstack.node.fairqueue.FairQueue`), where a peer other
than a fellow validator is counted by its host (:meth:`StateServing.key`: the identities
at one address share one peer's bounds); one more is refused at once with
``RATE_LIMITED``, unless a peer holding at least two more than its sender has one queued:
that one is refused instead (a few connections that fill the queue do not keep another
peer out).  The peers in ``priority`` (a node passes its fellow validators) come first:
theirs evict an ordinary peer's queued request when the queue is full, and are never
evicted by one (many identities, free to make, do not keep a validator from resyncing).
A root the server stopped serving before the
worker got to it is ``NOT_FOUND``, and so is a store closed under it
(:class:`~zapstack.errors.StoreError`: the node is going down); any other error is the
:class:`~zapstack.errors.ZapError`'s code (``INTERNAL`` for a chunk over its bound) --
the same whether the request was answered on the worker or at once on the loop.  A
reply for a stream that ended meanwhile is dropped (the connection's ``reply`` is a no-op
then).  Without a responder (a session run
by no adapter: sans-IO tests) the server's own synchronous handler is used.

Thread rules: the worker only calls ``answer_state``, which takes its own reference to
the pinned view it reads (under the server's lock on its views), so the loop re-pinning
or dropping that root meanwhile does not cut the reply short, and ``range_reply``, which
reads ``head`` and the block files; both add to the server's counters (``bytes_served``
is also added to on the loop by small requests: a lost update there only skews that
metric); every other use of the server stays on the loop.  Measured (8
requests of 16 chunks of a 1M-key state): the loop stalled up to 592-604 ms answering on
it, up to 8-41 ms with this.
:meth:`StateServing.close` (idempotent) stops the worker: it waits for the answer being
built, and requests queued then get no answer (the node is going down).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial

from zapstack.bootstrap.config import MAX_WINDOW
from zapstack.bootstrap.server import BootstrapServer, RequestHandler
from zapstack.errors import StoreError, WireCode, ZapError
from zapstack.node.fairqueue import FairQueue
from zapstack.transport.events import HandlerAction, Reject, Reply
from zapstack.transport.handler import NO_ACTIONS, Responder, StreamHandler, StreamInfo
from zapstack.transport.inbound import netgroup
from zapstack.transport.streams import StreamType

__all__ = ["INLINE", "INLINE_BLOCKS", "TOTAL", "StateServing"]

log = logging.getLogger("zapstack.node")

TOTAL = 32
"""STATE_CHUNK requests of all peers queued or running at once, by default."""
INLINE = 4096
"""Entries a request may be estimated to read and still be answered on the loop."""
INLINE_BLOCKS = 8
"""Blocks a HEADER_RANGE request may ask for and still be answered on the loop."""


@dataclass(frozen=True, slots=True)
class _Job:
    """One request waiting for, or on, the worker."""

    stream_id: int
    work: Callable[[], bytes]
    responder: Responder


class StateServing:
    """STATE_CHUNK and HEADER_RANGE answers off the event loop (see the module docstring)."""

    def __init__(
        self,
        server: BootstrapServer,
        *,
        per_peer: int = MAX_WINDOW,
        total: int = TOTAL,
        inline: int = INLINE,
        priority: Collection[bytes] = (),
    ) -> None:
        self.server = server
        self.inline = inline
        self.queue: FairQueue[_Job] = FairQueue(per_peer, total, priority)
        """The requests that wait for the worker or run on it (:mod:`.fairqueue`)."""
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="state-serve")
        self._running = self._closed = False
        self.refused = 0
        """Requests refused over a bound (at once, or evicted from the queue)."""

    def handler(self, info: StreamInfo) -> StreamHandler:
        """The handler for one inbound STATE_CHUNK or HEADER_RANGE stream."""
        if info.responder is None:
            return self.server.handler(info.peer, info.stream_type)
        return _Deferred(self, info, info.responder)

    def key(self, info: StreamInfo) -> bytes:
        """Whom a request counts against: a validator by its node id; any other peer by its
        host (an IPv6 host by its /64, :func:`~zapstack.transport.inbound.netgroup`), so
        every identity at one address shares one peer's bounds; its node id where the host
        is unknown (no adapter)."""
        if info.peer in self.queue.priority or not info.host:
            return info.peer
        return b"@" + netgroup(info.host).encode()

    def plan(self, info: StreamInfo, data: bytes) -> tuple[bool, Callable[[], bytes]]:
        """(answer here and now, the answer's work) for request ``data`` (on the loop;
        RemoteProtocolError to refuse a HEADER_RANGE request that does not parse)."""
        server = self.server
        if info.stream_type is StreamType.HEADER_RANGE:
            req = server.range_request(info.peer, data)
            return req.count <= INLINE_BLOCKS, partial(server.range_reply, req)
        return server.request_entries(data) <= self.inline, partial(server.answer_state, data)

    def submit(
        self, peer: bytes, stream_id: int, work: Callable[[], bytes], responder: Responder
    ) -> bool:
        """Queue ``work`` (a request's answer) for the worker, the reply delivered on the
        running loop; False if the bounds refuse it (a queued request of a peer holding
        more may be refused instead: :class:`~zapstack.node.fairqueue.FairQueue`)."""
        if self._closed:  # the node is going down: no worker to run it
            return False
        admission = self.queue.admit(peer, _Job(stream_id, work, responder))
        if admission.evicted is not None:
            self.refused += 1
            admission.evicted.responder.refuse(admission.evicted.stream_id, WireCode.RATE_LIMITED)
        if not admission.taken:
            self.refused += 1
            return False
        self._pump()
        return True

    def _pump(self) -> None:
        """Start the next queued request on the worker if it is idle."""
        if self._running or (item := self.queue.next()) is None:
            return
        peer, job = item
        self._running = True
        future = asyncio.get_running_loop().run_in_executor(self._pool, job.work)

        def deliver(done: asyncio.Future[bytes]) -> None:
            self.queue.done(peer)
            self._running = False
            if done.cancelled():
                return
            exc = done.exception()
            if exc is None:
                job.responder.reply(job.stream_id, done.result())
            elif isinstance(exc, StoreError):  # the store was closed under it: going down
                job.responder.refuse(job.stream_id, WireCode.NOT_FOUND)
            elif isinstance(exc, ZapError):
                job.responder.refuse(job.stream_id, exc.code)
            else:  # a bug: answer, and say so
                log.error("request answer failed: %r", exc)
                job.responder.refuse(job.stream_id, WireCode.INTERNAL)
            self._pump()

        future.add_done_callback(deliver)

    def close(self) -> None:
        """Stop the worker: requests not started are dropped, and the one it is answering
        (at most ~16 MiB of work) is waited for, so the store it reads may close after
        (idempotent)."""
        self._closed = True
        self.queue.drain()
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Deferred(RequestHandler):
    """Collects one request until FIN, then answers it here or hands it to the worker."""

    def __init__(self, serving: StateServing, info: StreamInfo, responder: Responder) -> None:
        super().__init__(lambda data: b"")  # on_end answers (StateServing.plan)
        self._serving = serving
        self._info = info
        self._responder = responder

    def on_end(self) -> Sequence[HandlerAction]:
        serving, info = self._serving, self._info
        try:
            here, work = serving.plan(info, bytes(self._buf))
            if here:  # a few ms: here and now
                return (Reply(work(), fin=True),)
        except StoreError:  # the store was closed under it: as on the worker
            return (Reject(WireCode.NOT_FOUND),)
        except ZapError as exc:  # a bad request, a chunk over its bound: its own code
            return (Reject(exc.code),)
        if not serving.submit(serving.key(info), info.stream_id, work, self._responder):
            return (Reject(WireCode.RATE_LIMITED),)
        return NO_ACTIONS
