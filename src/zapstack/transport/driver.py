"""The asyncio driver: runs sans-IO sessions over a real QUIC library.

Contract
--------
This module and the two bindings (:mod:`~zapstack.transport.qh3_adapter`,
:mod:`~zapstack.transport.aioquic_adapter`) are the only transport code that
touches asyncio or a QUIC library.  All stream logic lives in
:class:`~zapstack.transport.session.Session`; the driver only

* translates library events into session inputs (one table,
  ``_EVENT_INPUTS``, keyed by event class name -- qh3 and aioquic share them),
* executes session commands against the library and transmits,
* feeds the session what only the library knows: peer stream credit
  (MAX_STREAMS), per-stream send backlog (STREAM_DATA_BLOCKED -> back off),
* verifies identities: the dialer checks the listener's certificate against
  the node id it dialed, then proves its own identity on a HELLO stream.

Concurrency: one event loop; every method is called on it.  Awaiting methods
are bounded by :class:`TransportConfig` timeouts and raise
:class:`~zapstack.errors.TransportError` when a connection fails under them.
Unwind: :meth:`Peer.close`, :meth:`OutStream.cancel_write` and
:meth:`Endpoint.close` are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from zapstack.errors import LocalProtocolError, TransportError, WireCode
from zapstack.transport.events import (
    CloseConnection,
    ConnectionEnded,
    End,
    RequestCredit,
    ResetStream,
    SendStream,
    StopSending,
    StreamEnded,
    StreamReady,
)
from zapstack.transport.handler import HandlerFactory, StreamHandler
from zapstack.transport.identity import HelloHandler, NodeIdentity, encode_hello
from zapstack.transport.identity import node_id_of_cert_der as _node_id_of_cert
from zapstack.transport.session import Session
from zapstack.transport.streams import StreamType

__all__ = ["Binding", "Endpoint", "OutStream", "Peer", "TransportConfig"]


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Per-endpoint transport settings."""

    max_streams_uni: int = 64
    """Concurrent unidirectional streams a peer may open to us (LP-0202: 64)."""
    max_streams_bidi: int = 64
    """Concurrent bidirectional streams a peer may open to us."""
    idle_timeout: float = 30.0
    """QUIC idle timeout, seconds."""
    handshake_timeout: float = 5.0
    """Bound on the QUIC handshake plus HELLO, seconds."""
    op_timeout: float = 10.0
    """Bound on any single wait (credit, back-off, flush), seconds."""
    high_water: int = 1 << 20
    """Per-stream unsent backlog (bytes) past which writers back off."""
    low_water: int = 1 << 18
    """Backlog at which backed-off writers resume."""
    max_stream_data: int = 1 << 20
    """Per-stream receive window advertised to the peer."""
    max_data: int = 1 << 24
    """Connection receive window advertised to the peer."""
    credit_ping_interval: float = 0.005
    """While opens wait for stream credit, PING the peer this often (seconds)."""
    udp_recv_buffer: int = 4 << 20
    """SO_RCVBUF requested for the UDP socket (bytes; the kernel caps it at
    ``net.core.rmem_max``).  The Linux default (~208 KiB) holds ~170 datagrams:
    a receiver descheduled for a few milliseconds drops the rest of a burst."""


class Binding(Protocol):
    """What the driver needs from one QUIC library (see the two adapters)."""

    name: str
    protocol_base: type

    def configuration(
        self, *, is_client: bool, identity: NodeIdentity, config: TransportConfig
    ) -> Any: ...

    async def serve(
        self, host: str, port: int, configuration: Any, create_protocol: Callable[..., Any]
    ) -> tuple[Any, int]: ...

    def connect(
        self, host: str, port: int, configuration: Any, create_protocol: Callable[..., Any]
    ) -> contextlib.AbstractAsyncContextManager[Any]: ...

    def credit(self, quic: Any) -> tuple[int, int]:
        """Peer's cumulative MAX_STREAMS: ``(uni, bidi)``."""
        ...

    def backlog(self, quic: Any, stream_id: int) -> int:
        """Bytes queued on the stream and not yet transmitted."""
        ...

    def flushed(self, quic: Any, stream_id: int) -> bool:
        """Every byte written on the stream has been acknowledged by the peer."""
        ...

    def peer_cert_der(self, quic: Any) -> bytes | None: ...

    def odcid(self, quic: Any) -> bytes: ...


class OutStream:
    """Our sending side of a stream we opened."""

    def __init__(self, peer: Peer, stream_id: int, stream_type: StreamType) -> None:
        self.peer = peer
        self.stream_id = stream_id
        self.stream_type = stream_type

    async def write(self, data: bytes, *, fin: bool = False) -> None:
        """Queue ``data``; back off while the stream's backlog is over high water."""
        await self.peer._write(self.stream_id, data, fin)

    async def finish(self, data: bytes = b"") -> None:
        """Write ``data`` and FIN."""
        await self.peer._write(self.stream_id, data, True)

    async def cancel_write(self, code: int, *, flush: bool = True) -> None:
        """CancelWrite(code).  With ``flush`` (the default) first wait until every
        byte written so far is acknowledged, so the receiver is guaranteed to
        have been handed it (docs/formats/vectors-stream-reset.md).  Idempotent."""
        await self.peer._cancel(self.stream_id, code, flush)

    @property
    def end(self) -> tuple[End, int | None] | None:
        """How our sending side ended (FIN, cancelled, stopped by peer, aborted)."""
        return self.peer._send_ends.get(self.stream_id)


class Peer:
    """One QUIC connection to one peer, driven through its :class:`Session`."""

    def __init__(self, protocol: Any, endpoint: Endpoint, *, is_client: bool) -> None:
        self.protocol = protocol
        self.endpoint = endpoint
        self.binding = endpoint.binding
        self.is_client = is_client
        self.expected: bytes = b""
        self.initial_credit: tuple[int, int] = (0, 0)
        """(uni, bidi) stream limits the listener advertised (dialer side only)."""
        quic = protocol._quic
        handlers: dict[StreamType, HandlerFactory] = dict(endpoint.handlers)
        if not is_client:
            handlers[StreamType.HELLO] = lambda info: HelloHandler(
                endpoint.identity.node_id, self.binding.odcid(quic)
            )
        self.session = Session(is_client=is_client, handlers=handlers, require_auth=not is_client)
        self.authenticated: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()
        self.close_info: ConnectionEnded | None = None
        self.events: list[object] = []
        """Every session event, in order (tests and metrics read it)."""
        self._send_ends: dict[int, tuple[End, int | None]] = {}
        self._ready: dict[int, asyncio.Future[None]] = {}
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    @property
    def node_id(self) -> bytes:
        """The peer's verified node id (``b""`` until verified)."""
        return self.session.peer

    # --------------------------------------------------------- public API

    async def open_stream(
        self, stream_type: StreamType, handler: StreamHandler | None = None
    ) -> OutStream:
        """Open a stream; waits for stream credit (STREAM_LIMIT -> wait)."""
        stream_id = self.session.open_stream(stream_type, handler)
        if not self.session.is_writable(stream_id):
            future = asyncio.get_running_loop().create_future()
            self._ready[stream_id] = future
            self._service()
            await self._bounded(future, f"credit for stream {stream_id}")
        self._service()
        return OutStream(self, stream_id, stream_type)

    def stop_reading(self, stream_id: int, code: int) -> None:
        """StopSending(code) on our receiving half of ``stream_id``.  Idempotent."""
        self.session.stop_reading(stream_id, code)
        self._service()

    def close(self, code: int = WireCode.NO_ERROR, reason: str = "") -> None:
        """CONNECTION_CLOSE: every stream of this peer ends.  Idempotent."""
        self.session.close(code, reason)
        self._service()

    async def wait_closed(self, timeout: float) -> None:
        """Wait until the connection has ended (bounded)."""
        await asyncio.wait_for(self.closed.wait(), timeout)

    # ------------------------------------------------------------ writing

    async def _write(self, stream_id: int, data: bytes, fin: bool) -> None:
        self.session.send(stream_id, data, fin=fin)
        self._service()
        if self.binding.backlog(self.protocol._quic, stream_id) > self.endpoint.config.high_water:
            self.session.send_blocked(stream_id, True)
            await self._until(
                lambda: (
                    self.session.closed
                    or self.binding.backlog(self.protocol._quic, stream_id)
                    <= self.endpoint.config.low_water
                ),
                f"back-off on stream {stream_id}",
            )
            self.session.send_blocked(stream_id, False)
            self._service()

    async def _cancel(self, stream_id: int, code: int, flush: bool) -> None:
        if flush and self.session.is_writable(stream_id):
            await self._until(
                lambda: (
                    self.session.closed
                    or not self.session.is_writable(stream_id)
                    or self.binding.flushed(self.protocol._quic, stream_id)
                ),
                f"flush of stream {stream_id}",
            )
        self.session.cancel_write(stream_id, code)
        self._service()

    async def _until(self, predicate: Callable[[], bool], what: str) -> None:
        if predicate():
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        await self._bounded(future, what)

    async def _bounded(self, future: asyncio.Future[Any], what: str) -> Any:
        try:
            return await asyncio.wait_for(future, self.endpoint.config.op_timeout)
        except TimeoutError as exc:
            raise TransportError(f"timed out waiting for {what}", code=WireCode.TIMEOUT) from exc

    # ------------------------------------------------- library -> session

    def on_quic_event(self, event: Any) -> None:
        handler = _EVENT_INPUTS.get(type(event).__name__)
        if handler is not None:
            handler(self, event)

    def _on_data(self, event: Any) -> None:
        self.session.stream_data(event.stream_id, event.data, event.end_stream)

    def _on_reset(self, event: Any) -> None:
        self.session.stream_reset(event.stream_id, event.error_code)

    def _on_stop(self, event: Any) -> None:
        self.session.stop_sending(event.stream_id, event.error_code)

    def _on_terminated(self, event: Any) -> None:
        self.session.connection_terminated(event.error_code, event.reason_phrase or "")

    def _on_handshake(self, event: Any) -> None:
        if not self.is_client:
            return
        quic = self.protocol._quic
        der = self.binding.peer_cert_der(quic)
        got = _node_id_of_cert(der) if der else b""
        if got != self.expected:
            self.session.close(WireCode.BAD_SIGNATURE, "listener identity mismatch")
            return
        self.session.peer = got
        uni, bidi = self.binding.credit(quic)
        self.initial_credit = (uni, bidi)
        self.session.set_credit(uni=uni, bidi=bidi)
        stream_id = self.session.open_stream(StreamType.HELLO)
        if not self.session.is_writable(stream_id):
            self.session.close(WireCode.INTERNAL, "no stream credit for HELLO")
            return
        hello = encode_hello(self.endpoint.identity, got, self.binding.odcid(quic))
        self.session.send(stream_id, hello, fin=True)
        if not self.authenticated.done():
            self.authenticated.set_result(got)

    # ---------------------------------------------------------- servicing

    def service(self) -> None:
        """Called by the protocol after the library processed datagrams/timers."""
        self._service(transmit=False)

    def _service(self, *, transmit: bool = True) -> None:
        quic = self.protocol._quic
        session = self.session
        uni, bidi = self.binding.credit(quic)
        session.set_credit(uni=uni, bidi=bidi)
        while (command := session.next_command()) is not None:
            self._execute(quic, command)
        while (event := session.next_event()) is not None:
            self._on_session_event(event)
        self._wake_waiters()
        if transmit:
            self.protocol.transmit()

    def _wake_waiters(self) -> None:
        """Resolve every ``_until`` wait whose condition now holds.

        Run on each service *and* after each library transmit: a transmit is
        what shrinks a stream's backlog, so a writer in back-off learns of it
        then rather than at the next datagram or timer (one ACK delay later).
        """
        if not self._waiters:
            return
        still = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            if predicate():
                future.set_result(None)
            else:
                still.append((predicate, future))
        self._waiters = still

    def _execute(self, quic: Any, command: object) -> None:
        try:
            if isinstance(command, SendStream):
                quic.send_stream_data(command.stream_id, command.data, command.fin)
            elif isinstance(command, ResetStream):
                quic.reset_stream(command.stream_id, command.code)
            elif isinstance(command, StopSending):
                quic.stop_stream(command.stream_id, command.code)
            elif isinstance(command, CloseConnection):
                quic.close(error_code=command.code, reason_phrase=command.reason)
            elif isinstance(command, RequestCredit):
                self._ping_for_credit(command.bidirectional)
        except Exception as exc:  # the library refused: which commands may fail is a table
            if not isinstance(command, _MAY_FAIL):
                # our view of the stream diverged from the library's: a bug
                self.session.flow_control_error(f"{type(command).__name__} refused: {exc}")

    def _ping_for_credit(self, bidirectional: bool) -> None:
        """PING now and again every ``credit_ping_interval`` while opens are queued.

        aioquic raises MAX_STREAMS only on a packet it sends *after* the stream
        was discarded, so one PING may not be enough to carry the update.
        """
        if self.session.closed or not self.session.queued_opens(bidirectional=bidirectional):
            return
        with contextlib.suppress(Exception):
            self.protocol._quic.send_ping(0)
        self.protocol.transmit()
        asyncio.get_running_loop().call_later(
            self.endpoint.config.credit_ping_interval, self._ping_for_credit, bidirectional
        )

    def _on_session_event(self, event: object) -> None:
        self.events.append(event)
        if isinstance(event, StreamReady):
            future = self._ready.pop(event.stream_id, None)
            if future is not None and not future.done():
                future.set_result(None)
        elif isinstance(event, StreamEnded):
            if not event.receiving:
                self._send_ends[event.stream_id] = (event.end, event.code)
            if event.stream_type is StreamType.HELLO and event.end is not End.FIN:
                self.session.close(WireCode.BAD_SIGNATURE, "HELLO refused")
        elif isinstance(event, ConnectionEnded):
            self.close_info = event
            self.closed.set()
            error = TransportError(f"connection ended: {event.reason}", code=WireCode.INTERNAL)
            for future in self._ready.values():
                if not future.done():
                    future.set_exception(error)
            self._ready.clear()
            if not self.authenticated.done():
                self.authenticated.set_exception(error)
                self.authenticated.exception()  # mark retrieved
            for _, future in self._waiters:
                if not future.done():
                    future.set_result(None)
            self._waiters = []
        if self.session.authenticated and not self.is_client and not self.authenticated.done():
            self.authenticated.set_result(self.session.peer)
            self.endpoint._inbound(self)


TRANSMIT_RETRIES = 50
"""Consecutive failed library transmits before the connection is given up."""
TRANSMIT_RETRY_S = 0.005
"""Delay before retrying a failed library transmit (seconds)."""

_MAY_FAIL = (ResetStream, StopSending, CloseConnection)
"""Commands a library may refuse harmlessly: a late reset/stop on a stream the
library already finished (unwinds are idempotent), a close of a closed connection."""

_EVENT_INPUTS: dict[str, Callable[[Peer, Any], None]] = {
    "StreamDataReceived": Peer._on_data,
    "StreamReset": Peer._on_reset,
    "StopSendingReceived": Peer._on_stop,
    "ConnectionTerminated": Peer._on_terminated,
    "HandshakeCompleted": Peer._on_handshake,
}
"""Library event class name -> session input (identical names in qh3 and aioquic)."""


def grow_recv_buffer(transport: Any, size: int) -> int:
    """Ask for an SO_RCVBUF of ``size`` bytes on ``transport``'s UDP socket.

    Returns what the kernel granted (Linux reports twice the usable size), or 0
    where the transport exposes no socket.  Idempotent; never raises.
    """
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return 0
    with contextlib.suppress(OSError):
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < size:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    try:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    except OSError:
        return 0


def make_protocol_class(base: type) -> type:
    """A protocol subclass of a library's ``QuicConnectionProtocol`` driving a Peer."""

    class ZapProtocol(base):  # type: ignore[misc]
        zap_peer: Peer | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if self.zap_peer is not None:
                grow_recv_buffer(transport, self.zap_peer.endpoint.config.udp_recv_buffer)

        def quic_event_received(self, event: Any) -> None:
            if self.zap_peer is not None:
                self.zap_peer.on_quic_event(event)

        def _process_events(self) -> None:
            super()._process_events()
            if self.zap_peer is not None:
                self.zap_peer.service()

        def transmit(self) -> None:
            # qh3 2.1.0 intermittently raises ValueError("reserved stream is
            # missing") from its packet builder under heavy stream churn, before
            # re-arming its loss timer -- the connection would then stall for
            # good.  QUIC retransmits whatever that call lost, so we re-arm by
            # transmitting again shortly; a connection that keeps failing is
            # closed instead of spinning.
            try:
                super().transmit()
            except ValueError:
                failures = getattr(self, "_zap_transmit_failures", 0) + 1
                self._zap_transmit_failures = failures
                if failures > TRANSMIT_RETRIES:
                    if self.zap_peer is not None:
                        self.zap_peer.session.flow_control_error("QUIC library keeps failing")
                    return
                asyncio.get_running_loop().call_later(TRANSMIT_RETRY_S, self.transmit)
            else:
                self._zap_transmit_failures = 0
                if self.zap_peer is not None:
                    self.zap_peer._wake_waiters()

    ZapProtocol.__name__ = f"Zap{base.__module__.split('.')[0].capitalize()}Protocol"
    return ZapProtocol


class Endpoint:
    """A node's QUIC endpoint: listens, dials, hands out :class:`Peer` objects."""

    def __init__(
        self,
        binding: Binding,
        identity: NodeIdentity,
        handlers: Mapping[StreamType, HandlerFactory],
        config: TransportConfig | None = None,
    ) -> None:
        self.binding = binding
        self.identity = identity
        self.handlers = dict(handlers)
        self.config = config or TransportConfig()
        self.port = 0
        self.inbound: asyncio.Queue[Peer] = asyncio.Queue()
        self._server: Any = None
        self._stacks: list[contextlib.AsyncExitStack] = []
        self._protocol_class = make_protocol_class(binding.protocol_base)

    def _create(self, is_client: bool) -> Callable[..., Any]:
        def create(quic: Any, stream_handler: Any = None) -> Any:
            protocol = self._protocol_class(quic, stream_handler=stream_handler)
            protocol.zap_peer = Peer(protocol, self, is_client=is_client)
            return protocol

        return create

    def _inbound(self, peer: Peer) -> None:
        self.inbound.put_nowait(peer)

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start accepting connections; return the bound UDP port."""
        configuration = self.binding.configuration(
            is_client=False, identity=self.identity, config=self.config
        )
        self._server, self.port = await self.binding.serve(
            host, port, configuration, self._create(False)
        )
        return self.port

    async def accept(self) -> Peer:
        """The next inbound peer whose HELLO verified (bounded)."""
        try:
            return await asyncio.wait_for(self.inbound.get(), self.config.handshake_timeout)
        except TimeoutError as exc:
            raise TransportError("no authenticated inbound peer", code=WireCode.TIMEOUT) from exc

    async def dial(self, host: str, port: int, expected: bytes) -> Peer:
        """Connect to ``host:port`` and verify the listener is node ``expected``."""
        if len(expected) != 32:
            raise LocalProtocolError("expected node id must be 32 bytes")
        configuration = self.binding.configuration(
            is_client=True, identity=self.identity, config=self.config
        )
        stack = contextlib.AsyncExitStack()
        create = self._create(True)

        def create_expecting(quic: Any, stream_handler: Any = None) -> Any:
            protocol = create(quic, stream_handler)
            protocol.zap_peer.expected = expected
            return protocol

        try:
            protocol = await asyncio.wait_for(
                stack.enter_async_context(
                    self.binding.connect(host, port, configuration, create_expecting)
                ),
                self.config.handshake_timeout,
            )
        except (TimeoutError, ConnectionError) as exc:
            await stack.aclose()
            raise TransportError(f"handshake with {host}:{port} failed") from exc
        self._stacks.append(stack)
        peer: Peer = protocol.zap_peer
        peer._service()
        try:
            await asyncio.wait_for(peer.authenticated, self.config.handshake_timeout)
        except (TimeoutError, TransportError) as exc:
            raise TransportError(f"{host}:{port} is not node {expected.hex()}") from exc
        if peer.session.closed:
            raise TransportError(f"{host}:{port} is not node {expected.hex()}")
        return peer

    async def close(self) -> None:
        """Close every connection and stop listening.  Idempotent, bounded."""
        stacks, self._stacks = self._stacks, []
        for stack in stacks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stack.aclose(), self.config.handshake_timeout)
        if self._server is not None:
            self._server.close()
            self._server = None
