"""The asyncio driver of the bootstrap pipeline over real QUIC (qh3 / aioquic).

Contract
--------
The bootstrap cores (:mod:`zapstack.bootstrap`) are sans-IO; this module runs
them on a node's :class:`~zapstack.transport.driver.Endpoint`:

* :class:`ClientDriver` runs one :class:`~zapstack.bootstrap.client.BootstrapClient`
  over authenticated :class:`~zapstack.transport.driver.Peer` connections: it
  executes the client's commands (``OpenRequest`` -> open a bidi stream, write
  the request, FIN, feed the reply through ``links.ReplyHandler``;
  ``CancelRequest`` -> stop reading + reset; ``StopPush`` -> stop reading),
  fires ``handle_timer`` at the client's deadlines on the event loop's clock, reports a
  peer whose connection ends (``peer_lost``), hands every client event to ``on_event``
  and counts the requests peers reset or stopped by code (``refused``).  Register
  :meth:`ClientDriver.push_handler` for the push stream types (live blocks, mempool, votes).
* :class:`PushWriter` executes a :class:`~zapstack.bootstrap.server.BootstrapServer`'s
  pushes: per subscriber, in order, one uni stream per channel (the VOTE
  channel stays open).  A subscriber whose connection is gone is forgotten
  (``peer_gone``).
* :class:`StoreBlocks` lets the server answer HEADER_RANGE straight from the
  node's on-disk :class:`~zapstack.node.blockstore.BlockStore`.
* :func:`cert_check` is the real finality check (``verify_cert`` +
  ``accepted_tier`` + height) every block the client takes must pass.
* :class:`DeferredApplier` is the catch-up applier of a running validator: it
  queues checked blocks in height order; the node commits them through its
  consensus driver (which re-executes each block and checks its state root),
  so the client's ``BlockApplied.state_root`` is the *header's* root until then.

Every await is bounded (transport ``op_timeout``); unwinds (:meth:`ClientDriver.close`,
:meth:`PushWriter.close`) are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterator, MutableMapping, Sequence
from functools import partial
from typing import Any

from zapstack.bootstrap.client import BootstrapClient
from zapstack.bootstrap.events import CancelRequest, Event, OpenRequest, StopPush
from zapstack.bootstrap.links import PUSH_TYPES, PushHandler, ReplyHandler
from zapstack.bootstrap.server import BootstrapServer
from zapstack.consensus import cert as cert_mod
from zapstack.consensus.policy import accepted_tier
from zapstack.errors import InvalidCert, RemoteProtocolError, TransportError, ZapError
from zapstack.node.blockstore import BlockStore
from zapstack.node.genesis import Genesis
from zapstack.transport.driver import OutStream, Peer
from zapstack.transport.events import End, HandlerAction
from zapstack.transport.handler import StreamHandler, StreamInfo
from zapstack.transport.streams import StreamType
from zapstack.zap.views import BlockView

__all__ = [
    "WAIT_RECHECK_S",
    "ClientDriver",
    "DeferredApplier",
    "PushWriter",
    "StoreBlocks",
    "cert_check",
]

log = logging.getLogger("zapstack.node.bootstrap")


WAIT_RECHECK_S = 0.5
"""Longest :meth:`ClientDriver.wait` goes without checking its predicate."""


def cert_check(genesis: Genesis) -> Callable[[BlockView, bytes], bool]:
    """The real :data:`~zapstack.bootstrap.follow.CertCheck` of a chain.

    True iff ``cert`` decodes, names ``block`` (height, id), every present leg
    verifies against the genesis validator set and the present legs satisfy
    the CertPolicy (``accepted_tier``).
    """

    def check(block: BlockView, cert: bytes) -> bool:
        try:
            c = cert_mod.decode(cert)
            if c.height != block.height or c.block_id != block.block_id:
                return False
            verdict = cert_mod.verify_cert(c, genesis.vset)
        except (InvalidCert, RemoteProtocolError):
            return False
        return accepted_tier(genesis.policy, verdict.present) is not None

    return check


class StoreBlocks(MutableMapping[int, tuple[bytes, bytes]]):
    """A :class:`BlockStore` as the server's height -> (block, cert) mapping."""

    def __init__(self, store: BlockStore) -> None:
        self.store = store

    def __getitem__(self, height: int) -> tuple[bytes, bytes]:
        block, cert = self.store.block(height), self.store.cert(height)
        if block is None or cert is None:
            raise KeyError(height)
        return block, cert

    def __contains__(self, height: object) -> bool:
        return isinstance(height, int) and self.store.block(height) is not None

    def __setitem__(self, height: int, value: tuple[bytes, bytes]) -> None:
        if height not in self:  # the node normally stored it already
            self.store.put(height, *value)

    def __delitem__(self, height: int) -> None:
        raise KeyError("finalized blocks are never deleted")

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(int(p.stem) for p in self.store.root.glob("*.blk")))

    def __len__(self) -> int:
        return sum(1 for _ in self.store.root.glob("*.blk"))


class DeferredApplier:
    """Queues blocks the client applies; the node commits them (module contract)."""

    def __init__(self) -> None:
        self.queue: deque[tuple[bytes, bytes]] = deque()
        """(block bytes, cert bytes) in height order, not yet committed."""

    def apply(self, block: BlockView, cert: bytes) -> bytes:
        self.queue.append((bytes(block.buffer), cert))
        return block.state_root


class _Kick:
    """Wraps a stream handler: wakes the pump after each call; tells ``refused`` a reset's code."""

    def __init__(
        self,
        inner: StreamHandler,
        kick: Callable[[], None],
        refused: Callable[[int], None] | None = None,
    ) -> None:
        self.inner, self.kick, self.refused = inner, kick, refused

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        try:
            return self.inner.on_data(data)
        finally:
            self.kick()

    def on_end(self) -> Sequence[HandlerAction]:
        try:
            return self.inner.on_end()
        finally:
            self.kick()

    def on_terminated(self, end: End, code: int | None) -> None:
        try:
            if self.refused is not None and end in (End.RESET, End.STOPPED):
                self.refused(code or 0)
            self.inner.on_terminated(end, code)
        finally:
            self.kick()


class _Ignore:
    """A push stream nobody is bootstrapping from: read and drop (bounded by flow control)."""

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        return ()

    def on_end(self) -> Sequence[HandlerAction]:
        return ()

    def on_terminated(self, end: End, code: int | None) -> None:
        pass


class ClientDriver:
    """Runs a :class:`BootstrapClient` over real QUIC peers (module contract)."""

    def __init__(
        self, client: BootstrapClient, *, on_event: Callable[[Event], None] | None = None
    ) -> None:
        self.client = client
        self.on_event = on_event
        self.peers: dict[bytes, Peer] = {}
        self.events: deque[Event] = deque(maxlen=1024)
        """The last 1,024 client events, in order (diagnostics; a long catch-up makes
        thousands)."""
        self.opened: Counter[tuple[bytes, StreamType]] = Counter()
        """Requests opened per (peer, stream type)."""
        self.refused: Counter[tuple[StreamType, int]] = Counter()
        """Requests the peers reset or stopped, per (stream type, wire code)."""
        self._streams: dict[int, tuple[Peer, OutStream | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        """Set after every pass of the client's output (:meth:`wait` re-checks then)."""
        self._pump: asyncio.Task[None] | None = None
        self._closed = False

    def now(self) -> float:
        """The clock the client runs on (the event loop's)."""
        return asyncio.get_running_loop().time()

    def kick(self) -> None:
        """Wake the pump (new bytes, ends, or commands to execute)."""
        self._wake.set()

    # ------------------------------------------------------------ wiring

    def push_handler(self, info: StreamInfo) -> StreamHandler:
        """Handler factory for inbound BLOCK_PUSH / MEMPOOL_GOSSIP / VOTE streams."""
        if self._closed or info.peer not in self.peers:
            return _Ignore()
        return _Kick(PushHandler(self.client, self.now, info.peer, info), self.kick)

    def handlers(self) -> dict[StreamType, Callable[[StreamInfo], StreamHandler]]:
        """The push handler for each push stream type."""
        return {t: self.push_handler for t in PUSH_TYPES}

    def attach(self, peer: Peer) -> None:
        """Bootstrap from ``peer`` (an authenticated connection)."""
        if self._closed or peer.node_id in self.peers or peer.session.closed:
            return
        self.peers[peer.node_id] = peer
        self.client.add_peer(peer.node_id, self.now())
        self._spawn(self._watch(peer))
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run())
        self.kick()

    async def _watch(self, peer: Peer) -> None:
        await peer.closed.wait()
        self.client.peer_lost(peer.node_id, self.now())
        self.kick()

    async def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (bounded) until ``predicate()``; False on timeout.  It is checked whenever
        the pump has passed the client's output on (after every reply byte, end or timer
        the client handled) and at least every :data:`WAIT_RECHECK_S`."""
        deadline = self.now() + timeout
        while True:
            self._progress.clear()  # before the check: a pass after it is not missed
            if predicate():
                return True
            left = deadline - self.now()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(left, WAIT_RECHECK_S))

    async def close(self) -> None:
        """Abandon the bootstrap and cancel its streams.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.client.close()
        self._flush()
        for task in [*self._tasks, *([self._pump] if self._pump else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------ pump

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        client = self.client
        while not self._closed:
            now = self.now()
            deadline = client.next_deadline()
            if deadline is not None and deadline <= now:
                client.handle_timer(now)
            self._flush()
            deadline = client.next_deadline()
            wait = 0.5 if deadline is None else max(0.0, min(deadline - self.now(), 0.5))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _flush(self) -> None:
        client = self.client
        while (cmd := client.next_command()) is not None:
            if isinstance(cmd, OpenRequest):
                self._spawn(self._open(cmd))
            elif isinstance(cmd, CancelRequest):
                entry = self._streams.pop(cmd.req_id, None)
                if entry is not None:
                    self._spawn(_cancel(entry[0], entry[1], cmd.code))
            elif isinstance(cmd, StopPush):
                peer = self.peers.get(cmd.peer)
                if peer is not None:
                    peer.stop_reading(cmd.stream_id, cmd.code)
        while (event := client.next_event()) is not None:
            self.events.append(event)
            if self.on_event is not None:
                try:
                    self.on_event(event)
                except ZapError as exc:
                    log.warning("bootstrap event %s: %s", type(event).__name__, exc)
        self._progress.set()

    def _refused(self, stream_type: StreamType, code: int) -> None:
        self.refused[(stream_type, code)] += 1

    async def _open(self, cmd: OpenRequest) -> None:
        peer = self.peers.get(cmd.peer)
        if peer is None or peer.session.closed:
            self.client.peer_lost(cmd.peer, self.now())
            self.kick()
            return
        self.opened[(cmd.peer, cmd.stream_type)] += 1
        reply = ReplyHandler(self.client, self.now, cmd.req_id, cmd.peer)
        handler = _Kick(reply, self.kick, partial(self._refused, cmd.stream_type))
        self._streams[cmd.req_id] = (peer, None)
        try:
            out = await peer.open_stream(cmd.stream_type, handler)
            if cmd.req_id not in self._streams:  # cancelled while waiting for credit
                await _cancel(peer, out, 0)
                return
            self._streams[cmd.req_id] = (peer, out)
            await out.finish(cmd.data)
        except (TransportError, ZapError) as exc:
            log.info("bootstrap request to %s failed: %s", cmd.peer.hex()[:12], exc)
            self._streams.pop(cmd.req_id, None)
            self.client.peer_lost(cmd.peer, self.now())
            self.kick()


async def _cancel(peer: Peer, out: OutStream | None, code: int) -> None:
    if out is None:
        return
    peer.stop_reading(out.stream_id, code)
    with contextlib.suppress(TransportError, ZapError):
        await out.cancel_write(code, flush=False)


class PushWriter:
    """Writes a :class:`BootstrapServer`'s pushes to subscribers (module contract)."""

    def __init__(self, server: BootstrapServer, find: Callable[[bytes], Peer | None]) -> None:
        self.server = server
        self.find = find
        """Subscriber node id -> its live connection (or None)."""
        self._queues: dict[bytes, asyncio.Queue[Any]] = {}
        self._tasks: dict[bytes, asyncio.Task[None]] = {}
        self.pushed = 0
        """Push writes completed."""

    def flush(self) -> None:
        """Hand queued pushes to the per-subscriber writers."""
        for peer in self.server.pending():
            queue = self._queues.get(peer)
            if queue is None:
                queue = self._queues[peer] = asyncio.Queue()
                self._tasks[peer] = asyncio.get_running_loop().create_task(
                    self._writer(peer, queue)
                )
            while (push := self.server.next_push(peer)) is not None:
                queue.put_nowait(push)

    async def _writer(self, peer_id: bytes, queue: asyncio.Queue[Any]) -> None:
        channels: dict[int, OutStream] = {}
        conn: Peer | None = None
        try:
            while True:
                push = await queue.get()
                if conn is None or conn.session.closed:
                    conn = self.find(peer_id)
                    channels.clear()
                    if conn is None:
                        raise TransportError("subscriber gone")
                out = channels.get(push.channel)
                if out is None:
                    out = channels[push.channel] = await conn.open_stream(push.stream_type)
                await out.write(push.data, fin=push.fin)
                self.pushed += 1
                if push.fin:
                    del channels[push.channel]
        except (TransportError, ZapError) as exc:
            log.info("pushes to %s stopped: %s", peer_id.hex()[:12], exc)
        finally:
            self.server.peer_gone(peer_id)
            self._queues.pop(peer_id, None)
            self._tasks.pop(peer_id, None)

    async def close(self) -> None:
        """Stop every writer.  Idempotent."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
