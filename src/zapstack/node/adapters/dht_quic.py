"""The asyncio adapter that runs a :class:`DhtNode` and :class:`ChunkPull` s over real QUIC.

Contract
--------
One :class:`QuicDht` = one QUIC :class:`~zapstack.transport.driver.Endpoint`
(qh3 by default) + one sans-IO :class:`~zapstack.dht.node.DhtNode`.  Every RPC
is one bidirectional stream (``docs/formats/dht.md`` §1): Kademlia RPCs on
``DHT_RPC`` (0xDA), GET_HEADER / GET_CHUNK on ``BLOCK_CHUNK`` (0xD9); a
request of the wrong family on a stream type is reset with
``STREAM_PROTOCOL_VIOLATION``.  The adapter only moves bytes and time:

* server side: a :class:`~zapstack.node.adapters.dht_streams.ServeStream`
  hands each complete request to ``DhtNode.handle_request`` with the peer's
  *authenticated* node id (TLS / HELLO); the answer is written and the stream
  finished, a ``RemoteProtocolError`` becomes a reset with its code;
* client side: the node's :class:`~zapstack.dht.node.SendRpc` opens a stream
  (dialling the contact first if needed, checking its node id), the reply or
  the stream's end goes back through ``rpc_response`` / ``rpc_failed``;
  ``CancelRpc`` resets and stops the stream; a pull's ``RequestHeader`` /
  ``RequestChunk`` / ``CancelRequest`` likewise, its reply bytes go to
  ``receive_data`` as they arrive and a lost connection to
  ``peer_disconnected`` (partial buffers dropped, chunks re-requested);
* time: the event loop's clock; one pump task fires ``handle_timer`` at the
  cores' deadlines.

**Listen addresses.**  The transport authenticates a dialer's key but carries
no listen address (HELLO holds only the key), and a dialer's UDP source port
is not its listen port.  So a node announces itself on every connection it
dials: before any other RPC it sends ``ADD_PROVIDER(key = its own node id,
addr = its listen address)`` -- an ordinary, authenticated provider record
("node X is reachable at addr") that also makes ``GET_PROVIDERS(X)`` a node
address lookup.  A request from a peer whose listen address is still unknown
is answered, but that peer is kept out of the routing table.

Concurrency: everything runs on one event loop; the cores are called only
from it.  Unwind: :meth:`QuicDht.close` is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from zapstack.dht import CancelRequest, PullComplete, RequestChunk, RequestHeader, Stalled
from zapstack.dht.blocks import BlockLayout
from zapstack.dht.chunks import ChunkPull
from zapstack.dht.ids import Contact
from zapstack.dht.messages import AddProvider, Message
from zapstack.dht.node import CancelRpc, DhtNode, OpDone, SendRpc
from zapstack.dht.wire import MessageReader, encode
from zapstack.errors import RemoteProtocolError, TransportError, WireCode
from zapstack.node.adapters.dht_streams import ReplyStream, ServeStream, wire_code
from zapstack.transport.driver import Binding, Endpoint, OutStream, Peer, TransportConfig
from zapstack.transport.events import End, HandlerAction, Reject, Reply
from zapstack.transport.handler import StreamHandler, StreamInfo
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.streams import StreamType

__all__ = ["QuicDht"]

_UNKNOWN_ADDR = "unknown"


@dataclass(slots=True)
class _PullRun:
    pull: ChunkPull
    contacts: dict[str, Contact]
    done: asyncio.Future[bytes]
    streams: dict[tuple[str, int], tuple[Peer, OutStream | None]] = field(default_factory=dict)


class QuicDht:
    """A DHT node on a real QUIC endpoint (see the module contract)."""

    def __init__(
        self,
        identity: NodeIdentity,
        binding: Binding,
        *,
        rng: random.Random,
        config: TransportConfig | None = None,
        rpc_timeout: float = 2.0,
    ) -> None:
        self.identity = identity
        self.rng = rng
        self.rpc_timeout = rpc_timeout
        handlers = {t: self._serve_factory for t in (StreamType.DHT_RPC, StreamType.BLOCK_CHUNK)}
        self.endpoint = Endpoint(binding, identity, handlers, config)
        self.node: DhtNode | None = None
        self.book: dict[bytes, str] = {}
        """Node id -> listen address, for every node we dialled or that announced itself."""
        self._peers: dict[bytes, Peer] = {}
        self._dialing: dict[bytes, asyncio.Future[Peer]] = {}
        self._rpcs: dict[int, tuple[Peer, OutStream]] = {}
        self._ops: dict[int, asyncio.Future[OpDone]] = {}
        self._pulls: list[_PullRun] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    @property
    def contact(self) -> Contact:
        """Our node id and listen address."""
        assert self.node is not None, "start() first"
        return self.node.contact

    def now(self) -> float:
        """The clock the cores run on (the event loop's)."""
        return asyncio.get_running_loop().time()

    async def start(self, host: str = "127.0.0.1") -> Contact:
        """Listen on ``host`` (ephemeral port) and start the pump."""
        port = await self.endpoint.listen(host, 0)
        self.node = DhtNode(
            self.identity.spki, f"{host}:{port}", rng=self.rng, now=self.now(),
            rpc_timeout=self.rpc_timeout,
        )  # fmt: skip
        assert self.node.id == self.identity.node_id
        self._pump = asyncio.get_running_loop().create_task(self._run())
        return self.node.contact

    async def close(self) -> None:
        """Close every connection and stop.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in [*self._tasks, *([self._pump] if self._pump else [])]:
            task.cancel()
        for peer in list(self._peers.values()):
            peer.close()
        await self.endpoint.close()

    # ------------------------------------------------------------ operations

    async def _op(self, start: Callable[[DhtNode, float], int]) -> OpDone:
        assert self.node is not None
        op_id = start(self.node, self.now())
        future: asyncio.Future[OpDone] = asyncio.get_running_loop().create_future()
        self._ops[op_id] = future
        self._kick()
        return await future

    async def bootstrap(self, seeds: list[Contact]) -> OpDone:
        """Join through ``seeds``."""
        for s in seeds:
            self.book[s.node_id] = s.addr
        return await self._op(lambda n, now: n.bootstrap(seeds, now))

    async def find_value(self, key: bytes) -> OpDone:
        """FIND_VALUE lookup."""
        return await self._op(lambda n, now: n.find_value(key, now))

    async def get_providers(self, key: bytes) -> OpDone:
        """Provider lookup for a block id."""
        return await self._op(lambda n, now: n.get_providers(key, now))

    async def store(self, value: bytes) -> OpDone:
        """STORE at the k closest nodes."""
        return await self._op(lambda n, now: n.store(value, now))

    async def provide(self, key: bytes) -> OpDone:
        """Announce ourselves as a provider of ``key``."""
        return await self._op(lambda n, now: n.provide(key, now))

    def serve_block(self, block: bytes, layout: BlockLayout) -> bytes:
        """Serve ``block`` for GET_HEADER / GET_CHUNK; return its id."""
        assert self.node is not None
        return self.node.serve_block(block, layout)

    def start_pull(
        self, block_id: bytes, providers: Sequence[Contact], layout: Callable[[bytes], BlockLayout]
    ) -> tuple[ChunkPull, asyncio.Future[bytes]]:
        """Start pulling ``block_id``; the future resolves to the verified block bytes."""
        contacts = {c.addr: c for c in providers}
        for c in providers:
            self.book.setdefault(c.node_id, c.addr)
        pull = ChunkPull(block_id, [c.addr for c in providers], layout=layout, now=self.now())
        run = _PullRun(pull, contacts, asyncio.get_running_loop().create_future())
        self._pulls.append(run)
        self._kick()
        return pull, run.done

    # ------------------------------------------------------------ server side

    def _serve_factory(self, info: StreamInfo) -> StreamHandler:
        return ServeStream(self._answer, info)

    def _answer(self, peer_id: bytes, msg: Message) -> Sequence[HandlerAction]:
        node = self.node
        if node is None:
            return (Reject(WireCode.INTERNAL),)
        if isinstance(msg, AddProvider) and msg.key == peer_id:
            self.book[peer_id] = msg.addr  # the self-announcement
        addr = self.book.get(peer_id)
        known = peer_id in node.routing
        try:
            reply = node.handle_request(Contact(peer_id, addr or _UNKNOWN_ADDR), msg, self.now())
        except RemoteProtocolError as exc:
            return (Reject(exc.code),)
        finally:
            if addr is None and not known:
                node.routing.remove(peer_id)
            self._kick()
        return self._reply(msg, encode(reply))

    def _reply(self, request: Message, data: bytes) -> Sequence[HandlerAction]:
        """The actions answering ``request`` with ``data`` (tests override to misbehave)."""
        return (Reply(data, fin=True),)

    # ------------------------------------------------------------ connections

    async def _connect(self, contact: Contact) -> Peer:
        peer = self._peers.get(contact.node_id)
        if peer is not None and not peer.session.closed:
            return peer
        pending = self._dialing.get(contact.node_id)
        if pending is not None:
            return await pending
        future: asyncio.Future[Peer] = asyncio.get_running_loop().create_future()
        self._dialing[contact.node_id] = future
        try:
            host, _, port = contact.addr.rpartition(":")
            peer = await self.endpoint.dial(host, int(port), contact.node_id)
            await self._announce(peer)
            self.book[contact.node_id] = contact.addr
            self._peers[contact.node_id] = peer
            future.set_result(peer)
            return peer
        except (TransportError, ValueError, OSError) as exc:
            future.set_exception(TransportError(f"cannot reach {contact.addr}: {exc}"))
            future.exception()
            raise TransportError(f"cannot reach {contact.addr}") from exc
        finally:
            del self._dialing[contact.node_id]

    async def _announce(self, peer: Peer) -> None:
        """ADD_PROVIDER(own id, own address) and wait for the ack (module contract)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        reader = MessageReader()

        def end() -> None:
            if not done.done():
                done.set_result(None)

        def gone(end_: End, code: int | None) -> None:
            if not done.done():
                done.set_exception(TransportError("announcement refused"))

        handler = ReplyStream(reader.receive_data, end, gone, lambda: None)
        out = await peer.open_stream(StreamType.DHT_RPC, handler)
        await out.finish(encode(AddProvider(self.contact.node_id, self.contact.addr)))
        await asyncio.wait_for(done, self.rpc_timeout)

    # ------------------------------------------------------------ pump

    def _kick(self) -> None:
        self._wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        node = self.node
        assert node is not None
        while not self._closed:  # 3.11's wait_for may swallow a cancel that meets a wake
            now = self.now()
            node.handle_timer(now)
            for run in self._pulls:
                if not run.done.done():
                    run.pull.handle_timer(now)
            while (a := node.next_action()) is not None:
                self._on_node_action(a)
            for run in self._pulls:
                while (pa := run.pull.next_action()) is not None:
                    self._on_pull_action(run, pa)
            deadlines = [node.next_deadline()] + [r.pull.next_deadline() for r in self._pulls]
            wait = min((d - now for d in deadlines if d is not None), default=1.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, min(wait, 1.0)))

    def _on_node_action(self, a: SendRpc | CancelRpc | OpDone) -> None:
        if isinstance(a, SendRpc):
            self._spawn(self._send_rpc(a))
        elif isinstance(a, CancelRpc):
            entry = self._rpcs.pop(a.rpc_id, None)
            if entry is not None:
                self._spawn(self._cancel(entry[0], entry[1], a.code))
        else:
            future = self._ops.pop(a.op_id, None)
            if future is not None and not future.done():
                future.set_result(a)

    async def _send_rpc(self, a: SendRpc) -> None:
        node = self.node
        assert node is not None
        reader = MessageReader()

        def data(chunk: bytes) -> None:
            try:
                reader.receive_data(chunk)
            except RemoteProtocolError as exc:
                self._fail_rpc(a.rpc_id, exc.code)

        def end() -> None:
            self._rpcs.pop(a.rpc_id, None)
            try:
                msg = reader.next_message()
                reader.end_of_stream()
                if msg is None:
                    raise RemoteProtocolError("empty reply", code=WireCode.TRUNCATED)
                node.rpc_response(a.rpc_id, msg, self.now())
            except RemoteProtocolError as exc:
                node.rpc_failed(a.rpc_id, exc.code, self.now())

        def gone(end_: End, code: int | None) -> None:
            self._rpcs.pop(a.rpc_id, None)
            node.rpc_failed(a.rpc_id, wire_code(code), self.now())

        try:
            peer = await self._connect(a.to)
            reply = ReplyStream(data, end, gone, self._kick)
            out = await peer.open_stream(StreamType.DHT_RPC, reply)
            self._rpcs[a.rpc_id] = (peer, out)
            await out.finish(a.data)
        except TransportError:
            node.rpc_failed(a.rpc_id, WireCode.CANCELLED, self.now())
            self._kick()

    def _fail_rpc(self, rpc_id: int, code: WireCode) -> None:
        assert self.node is not None
        entry = self._rpcs.pop(rpc_id, None)
        self.node.rpc_failed(rpc_id, code, self.now())
        if entry is not None:
            self._spawn(self._cancel(entry[0], entry[1], code))

    async def _cancel(self, peer: Peer, out: OutStream | None, code: int) -> None:
        if out is None:
            return
        peer.stop_reading(out.stream_id, code)
        with contextlib.suppress(TransportError):
            await out.cancel_write(code, flush=False)

    def _on_pull_action(
        self,
        run: _PullRun,
        a: RequestHeader | RequestChunk | CancelRequest | PullComplete | Stalled,
    ) -> None:
        if isinstance(a, RequestHeader | RequestChunk):
            index = a.index if isinstance(a, RequestChunk) else -1
            self._spawn(self._pull_request(run, a.peer, index, a.data))
        elif isinstance(a, CancelRequest):
            entry = run.streams.pop((a.peer, a.index), None)
            if entry is not None:
                self._spawn(self._cancel(entry[0], entry[1], a.code))
        elif isinstance(a, PullComplete) and not run.done.done():
            run.done.set_result(a.block)

    async def _pull_request(self, run: _PullRun, addr: str, index: int, data: bytes) -> None:
        pull = run.pull
        contact = run.contacts.get(addr)

        def gone(end_: End, code: int | None) -> None:
            run.streams.pop((addr, index), None)
            if end_ is End.ABORTED:
                pull.peer_disconnected(addr, self.now())
            else:
                pull.stream_reset(addr, index, wire_code(code), self.now())

        def ended() -> None:
            run.streams.pop((addr, index), None)
            pull.stream_ended(addr, index, self.now())

        handler = ReplyStream(
            lambda chunk: pull.receive_data(addr, index, chunk, self.now()), ended, gone, self._kick
        )
        try:
            if contact is None:
                raise TransportError(f"no node id known for {addr}")
            peer = await self._connect(contact)
            out = await peer.open_stream(StreamType.BLOCK_CHUNK, handler)
            run.streams[(addr, index)] = (peer, out)
            await out.finish(data)
        except TransportError:
            pull.peer_disconnected(addr, self.now())
            self._kick()
