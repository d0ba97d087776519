"""The tx receive pipeline on a real QUIC endpoint (asyncio glue, receiving side).

Contract
--------
This is the mempool's asyncio adapter, the counterpart of
:mod:`zapstack.transport.driver`: the sans-IO :mod:`zapstack.mempool` core
never imports asyncio; this module (in the node's adapter layer) does.

:class:`TxAdmitServer` (the receiving node) runs one
:class:`~zapstack.mempool.handler.TxSubmitService` /
:class:`~zapstack.mempool.TxReceiver` behind every ``TX_SUBMIT`` stream of an
:class:`~zapstack.transport.driver.Endpoint`:

* **peer ids are real**: the listener's sessions run with ``require_auth``
  (the driver does this for every inbound connection), so ``StreamInfo.peer``,
  the receiver's peer key and the reputation key are the dialer's verified
  node id, never ``b""``.
* **stop_stream -> refuse, reply_stream -> reply**: a verdict on a stream
  other than the one being fed (a deferred signature check, a resumed stream,
  a timeout) is carried out with :meth:`Peer.refuse <zapstack.transport.driver.Peer.refuse>`
  (both halves reset with the code) or :meth:`Peer.reply
  <zapstack.transport.driver.Peer.reply>` (the answer record, then FIN) on the
  connection of that node id (the most recently attached one).  A verdict on
  the stream being fed is the handler's ``Reject`` or ``Reply``.
* **verify batches on a thread pool**: with ``defer_verification=True`` the
  receiver answers ``VerifyRequest`` at FIN; requests collected during one
  event-loop turn become one :func:`~zapstack.mempool.verify_batch` task (at
  most ``max_batch`` views) on a ``ThreadPoolExecutor`` (``cryptography``
  releases the GIL); at most ``max_batches_in_flight`` run at once, the rest
  wait in FIFO order.  Results come back on the loop (``TxSubmitService.verified``).
* **ticks**: ``TxSubmitService.tick`` every ``tick_interval`` seconds times out
  stalled streams (the loop's clock is the receiver's ``now``).
* **connection loss**: the session ends every receiving stream of a closed
  connection (``on_terminated`` -> ``TxReceiver.stream_reset``: partial
  buffers dropped, credit returned); the connection's peer entry is removed.
  Complete txs already waiting for their signature check are still judged.
* **admit receipts** (``receipts=True``, docs/formats/mempool.md §Admit
  receipts): each admitted tx's frame is pushed back to the peer that submitted
  it on a ``MEMPOOL_GOSSIP`` stream (the frames of one loop turn back to back,
  at most ``receipt_max_frames`` per stream, then FIN).  Best effort: a tx
  evicted before the push, or a closed connection, gets none.

Two live connections from one node id share the receiver's key space: a
stream whose id collides with a still-live stream of the same node id is
refused ``STREAM_PROTOCOL_VIOLATION`` (LP-0202: one connection per peer).

The submitting node's side of the receipts (``ReceiptTracker``,
``FrameSplitter``) is :mod:`zapstack.node.adapters.mempool_receipts`.

Concurrency: everything runs on one event loop, except ``verify_batch`` on the
executor (pure function of immutable views).  Unwind: :meth:`TxAdmitServer.close`
is idempotent and bounded; stops are idempotent (``Session.stop_reading``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from zapstack.errors import WireCode, ZapError
from zapstack.mempool.actions import TxAdmitted, TxRejected, VerifyRequest, verify_batch
from zapstack.mempool.handler import TxSubmitService
from zapstack.mempool.receive import TxReceiver
from zapstack.transport.driver import Endpoint, Peer
from zapstack.transport.events import End, HandlerAction, Reject
from zapstack.transport.handler import HandlerFactory, StreamHandler, StreamInfo
from zapstack.transport.streams import StreamType

__all__ = ["TxAdmitConfig", "TxAdmitServer"]


@dataclass(frozen=True, slots=True)
class TxAdmitConfig:
    """Settings of :class:`TxAdmitServer`."""

    verify_threads: int = 2
    """Threads of the signature-verify pool (used when verification is deferred)."""
    max_batch: int = 64
    """Most views in one ``verify_batch`` task."""
    max_batches_in_flight: int = 4
    """Most verify tasks submitted to the pool at once."""
    tick_interval: float = 1.0
    """Seconds between ``TxSubmitService.tick`` calls (stream timeouts)."""
    receipts: bool = False
    """Push each admitted frame back to its submitter on MEMPOOL_GOSSIP."""
    receipt_max_frames: int = 64
    """Most frames in one receipt stream."""


class _Kicking:
    """Wraps the service's per-stream handler; wakes the outbox drain after each call."""

    __slots__ = ("inner", "key", "server")

    def __init__(self, inner: StreamHandler, server: TxAdmitServer, key: tuple[bytes, int]) -> None:
        self.inner = inner
        self.server = server
        self.key = key

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        return self.server._after(self.key, self.inner.on_data(data))

    def on_end(self) -> Sequence[HandlerAction]:
        return self.server._after(self.key, self.inner.on_end())

    def on_terminated(self, end: End, code: int | None) -> None:
        self.server._live.discard(self.key)
        self.inner.on_terminated(end, code)
        self.server._kick()


class _Refused:
    """Handler of a stream refused at open (its key collides with a live stream)."""

    __slots__ = ()

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        return (Reject(WireCode.STREAM_PROTOCOL_VIOLATION),)

    def on_end(self) -> Sequence[HandlerAction]:
        return (Reject(WireCode.STREAM_PROTOCOL_VIOLATION),)

    def on_terminated(self, end: End, code: int | None) -> None:
        return None


class TxAdmitServer:
    """Serves ``TX_SUBMIT`` streams of an endpoint through one :class:`TxReceiver`."""

    def __init__(
        self,
        rx: TxReceiver,
        config: TxAdmitConfig | None = None,
        *,
        executor: Executor | None = None,
    ) -> None:
        """``rx`` is owned by this server from now on (one loop drives it).

        ``executor``: the verify pool; by default a ``ThreadPoolExecutor`` of
        ``config.verify_threads`` threads, created here and shut down by :meth:`close`.
        """
        self.rx = rx
        self.config = config or TxAdmitConfig()
        self.service = TxSubmitService(
            rx, clock=self._now, stop_stream=self._stop, reply_stream=self._reply
        )
        self.peers: dict[bytes, Peer] = {}
        """Attached connections by node id (the latest one per node id)."""
        self.admitted = 0
        """Txs admitted (stage 5 passed)."""
        self.rejected = 0
        """Well-formed txs stage 5 refused."""
        self.stopped = 0
        """Verdicts carried out on another stream with ``stop_reading``."""
        self.batches = 0
        """``verify_batch`` tasks completed."""
        self.peak_in_flight = 0
        """Most streams the receiver held at once."""
        self.changed = asyncio.Event()
        """Set whenever a verdict lands or a connection is attached or lost."""
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            self.config.verify_threads, thread_name_prefix="zap-verify"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._live: set[tuple[bytes, int]] = set()
        self._pending: deque[VerifyRequest] = deque()
        self._batches_out = 0
        self._receipts: dict[bytes, list[bytes]] = {}
        self._scheduled = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ wiring

    @property
    def handlers(self) -> Mapping[StreamType, HandlerFactory]:
        """The endpoint handlers this server provides (``TX_SUBMIT``)."""
        return {StreamType.TX_SUBMIT: self.factory}

    def factory(self, info: StreamInfo) -> StreamHandler:
        """The ``HandlerFactory`` for ``StreamType.TX_SUBMIT``."""
        key = (info.peer, info.stream_id)
        if key in self._live:
            return _Refused()
        self._live.add(key)
        inner = self.service.factory(info)
        self.peak_in_flight = max(self.peak_in_flight, self.rx.in_flight)
        return _Kicking(inner, self, key)

    def start(self, endpoint: Endpoint) -> None:
        """Attach every authenticated inbound peer of ``endpoint``; start ticking.

        Call on the running loop, after :meth:`Endpoint.listen`."""
        self._loop = asyncio.get_running_loop()
        self._spawn(self._accept_loop(endpoint))
        self._timer = self._loop.call_later(self.config.tick_interval, self._tick)

    def attach(self, peer: Peer) -> None:
        """Route this connection's stops; forget it when it closes."""
        self.peers[peer.node_id] = peer
        self.changed.set()
        self._spawn(self._watch(peer))

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (bounded) until ``predicate()`` holds; re-checked on every change."""

        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def close(self) -> None:
        """Stop accepting, ticking and verifying.  Idempotent, bounded."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 1.0)
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------- internals

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_loop(self, endpoint: Endpoint) -> None:
        while True:
            self.attach(await endpoint.inbound.get())

    async def _watch(self, peer: Peer) -> None:
        await peer.closed.wait()
        if self.peers.get(peer.node_id) is peer:
            del self.peers[peer.node_id]
        self.changed.set()

    def _tick(self) -> None:
        if self._closed or self._loop is None:
            return
        self.service.tick()
        self._kick()
        self._timer = self._loop.call_later(self.config.tick_interval, self._tick)

    def _stop(self, peer_id: bytes, stream_id: int, code: int) -> None:
        self._live.discard((peer_id, stream_id))
        self.stopped += 1
        self.changed.set()
        peer = self.peers.get(peer_id)
        if peer is not None:
            peer.refuse(stream_id, code)

    def _reply(self, peer_id: bytes, stream_id: int, record: bytes) -> None:
        peer = self.peers.get(peer_id)
        if peer is not None:
            peer.reply(stream_id, record)

    def _after(
        self, key: tuple[bytes, int], actions: Sequence[HandlerAction]
    ) -> Sequence[HandlerAction]:
        if actions:  # a Reject of the stream being fed: it is over
            self._live.discard(key)
            self.changed.set()
        self._kick()
        return actions

    def _kick(self) -> None:
        if not self._scheduled and self.service.outbox and not self._closed:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        if self._closed:
            return
        outbox = self.service.outbox
        while outbox:
            action = outbox.popleft()
            if isinstance(action, VerifyRequest):
                self._pending.append(action)
                continue
            self._live.discard((action.peer, action.stream_id))
            self.changed.set()
            if isinstance(action, TxAdmitted):
                self.admitted += 1
                if self.config.receipts:
                    view = self.rx.pool.get(action.result.tx_id)
                    if view is not None:
                        self._receipts.setdefault(action.peer, []).append(bytes(view.buffer))
            elif isinstance(action, TxRejected):
                self.rejected += 1
        self._submit()
        if self._receipts:
            receipts, self._receipts = self._receipts, {}
            for peer_id, frames in receipts.items():
                peer = self.peers.get(peer_id)
                if peer is not None and not peer.session.closed:
                    self._spawn(self._push_receipts(peer, frames))

    def _submit(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending and self._batches_out < self.config.max_batches_in_flight:
            n = min(len(self._pending), self.config.max_batch)
            batch = [self._pending.popleft() for _ in range(n)]
            future = loop.run_in_executor(self._executor, verify_batch, [r.view for r in batch])
            self._batches_out += 1
            future.add_done_callback(lambda f, b=batch: self._verified(b, f))  # type: ignore[misc]

    def _verified(self, batch: list[VerifyRequest], future: asyncio.Future[list[bool]]) -> None:
        self._batches_out -= 1
        if self._closed or future.cancelled():
            return
        results = future.result()
        self.batches += 1
        for request, ok in zip(batch, results, strict=True):
            self.service.verified(request.peer, request.stream_id, ok)
        self._drain()

    async def _push_receipts(self, peer: Peer, frames: list[bytes]) -> None:
        step = self.config.receipt_max_frames
        with contextlib.suppress(ZapError):  # the connection went away: best effort
            for i in range(0, len(frames), step):
                stream = await peer.open_stream(StreamType.MEMPOOL_GOSSIP)
                await stream.finish(b"".join(frames[i : i + step]))
