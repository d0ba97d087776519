"""The asyncio driver: runs sans-IO sessions over a real QUIC library.

Contract
--------
This module and the two bindings (:mod:`~zapstack.transport.qh3_adapter`,
:mod:`~zapstack.transport.aioquic_adapter`) are the only transport code that
touches asyncio or a QUIC library.  All stream logic lives in
:class:`~zapstack.transport.session.Session`; the driver only

* listens and dials (:class:`Endpoint`), making one
  :class:`~zapstack.transport.peer.Peer` per connection (re-exported here with
  :class:`~zapstack.transport.peer.OutStream`): the peer translates library
  events into session inputs, executes session commands, feeds the session
  stream credit and send backlog, and verifies identities (HELLO);
* subclasses the library's protocol class (:func:`make_protocol_class`) to
  route its events to the peer, grow the UDP receive buffer and survive a
  library's transient transmit failures.

Concurrency: one event loop; every method is called on it.  Awaiting methods
are bounded by :class:`TransportConfig` timeouts and raise
:class:`~zapstack.errors.TransportError` when a connection fails under them.
Unwind: :meth:`Peer.close`, :meth:`OutStream.cancel_write` and
:meth:`Endpoint.close` are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from zapstack.errors import LocalProtocolError, TransportError, WireCode
from zapstack.transport.handler import HandlerFactory
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.inbound import InboundCaps
from zapstack.transport.limits import Breach, LimitPolicy
from zapstack.transport.peer import OutStream, Peer
from zapstack.transport.streams import StreamType

__all__ = ["Binding", "Endpoint", "OutStream", "Peer", "TransportConfig"]

log = logging.getLogger("zapstack.transport")


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
    """Bound on the QUIC handshake plus HELLO, seconds: a dial gives up after it, and a
    listener closes an inbound connection whose HELLO has not verified by then."""
    op_timeout: float = 10.0
    """Bound on any single wait (credit, back-off, flush), seconds."""
    high_water: int = 1 << 20
    """Per-stream unsent backlog (bytes) past which writers back off."""
    low_water: int = 1 << 18
    """Backlog at which backed-off writers resume."""
    max_reply_backlog: int = 1 << 26
    """Unsent bytes of our replies to one peer past which a further reply is reset with
    RATE_LIMITED instead of queued (:mod:`.replybudget`): what a peer that asks and does
    not read can make this node hold, plus one reply."""
    max_stream_data: int = 1 << 20
    """Per-stream receive window advertised to the peer."""
    max_data: int = 1 << 24
    """Connection receive window advertised to the peer."""
    credit_ping_interval: float = 0.005
    """While opens wait for stream credit, PING the peer this often (seconds)."""
    max_inbound: int = 512
    """Inbound connections held at once, counted once their HELLO verifies; one more is
    closed then with ``RATE_LIMITED`` (a validator of ``LimitPolicy.validators`` neither
    needs nor takes a place)."""
    max_inbound_per_host: int = 64
    """The same, from one IP address (loopback included)."""
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

    def remote_host(self, quic: Any) -> str:
        """The peer's IP address (:func:`~.inbound.host_of`; ``""`` before its first datagram)."""
        ...


TRANSMIT_RETRIES = 50
"""Consecutive failed library transmits before the connection is given up."""
TRANSMIT_RETRY_S = 0.005
"""Delay before retrying a failed library transmit (seconds)."""


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

        async def wait_connected(self) -> None:
            # Both libraries await their connected-waiter through asyncio.shield:
            # when our bounded dial gives up (wait_for cancels this), the waiter
            # lives on and the library fails it with ConnectionError once the
            # connection closes -- with nobody left to read it, asyncio would
            # log "Future exception was never retrieved" at ERROR.  The dialer
            # already has its TransportError: the waiter's outcome is retrieved.
            try:
                await super().wait_connected()
            except asyncio.CancelledError:
                waiter = getattr(self, "_connected_waiter", None)
                if waiter is not None:
                    waiter.add_done_callback(_retrieve)
                raise

        _zap_hold = False
        _zap_flush_due = False

        def _held(self, feed: Callable[[Any, Any], None], data: Any, addr: Any) -> None:
            # The library transmits after every datagram (or batch) it is fed; hold
            # that and send once per loop iteration, after every datagram read in it
            # (and the replies they caused): fewer, fuller packets, one ACK for many.
            self._zap_hold = True
            try:
                feed(data, addr)
            finally:
                self._zap_hold = False
            self.transmit_soon()

        def datagram_received(self, data: Any, addr: Any) -> None:
            self._held(super().datagram_received, data, addr)

        if hasattr(base, "datagrams_received"):  # qh3's batched receive (recvmmsg)

            def datagrams_received(self, data: Any, addr: Any) -> None:
                self._held(super().datagrams_received, data, addr)

        def transmit_soon(self) -> None:
            """Transmit once, later in this loop iteration (any number of calls: one flush)."""
            if not self._zap_flush_due:
                self._zap_flush_due = True
                asyncio.get_running_loop().call_soon(self._zap_flush)

        def transmit_now(self) -> None:
            """Transmit at once, even while a datagram is being processed (the library's
            state is whole between its events: a large reply's first packets leave now)."""
            held, self._zap_hold = self._zap_hold, False
            try:
                self.transmit()
            finally:
                self._zap_hold = held

        def _zap_flush(self) -> None:
            self._zap_flush_due = False
            self.transmit()

        def transmit(self) -> None:
            if self._zap_hold:
                return  # a datagram is being processed: transmit_soon follows it
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


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a finished future's exception as seen (its owner gave up waiting)."""
    if not future.cancelled():
        future.exception()


class Endpoint:
    """A node's QUIC endpoint: listens, dials, hands out :class:`Peer` objects."""

    def __init__(
        self,
        binding: Binding,
        identity: NodeIdentity,
        handlers: Mapping[StreamType, HandlerFactory],
        config: TransportConfig | None = None,
        limits: LimitPolicy | None = None,
    ) -> None:
        self.binding = binding
        self.identity = identity
        self.handlers = dict(handlers)
        self.config = config or TransportConfig()
        self.limits = limits
        """Bounds on every peer-opened stream of the connections made from now on
        (:mod:`~zapstack.transport.limits`); ``None``: unbounded at this layer."""
        self.breaches: deque[tuple[bytes, Breach]] = deque(maxlen=256)
        """The latest peers disconnected for breaking a bound: (node id, breach)."""
        self.breach_counts: Counter[str] = Counter()
        """Peers disconnected for breaking a bound since start, by rule (a metric)."""
        self.port = 0
        self.inbound: asyncio.Queue[Peer] = asyncio.Queue()
        self.caps = InboundCaps(self.config.max_inbound, self.config.max_inbound_per_host)
        """The inbound connections held, by address (:mod:`.inbound`)."""
        self._server: Any = None
        self._stacks: list[contextlib.AsyncExitStack] = []
        self._protocol_class = make_protocol_class(binding.protocol_base)

    def _create(self, is_client: bool) -> Callable[..., Any]:
        def create(quic: Any, stream_handler: Any = None) -> Any:
            protocol = self._protocol_class(quic, stream_handler=stream_handler)
            protocol.zap_peer = peer = Peer(protocol, self, is_client=is_client)
            if not is_client:  # a dialer that never proves who it is does not stay
                loop = asyncio.get_running_loop()
                loop.call_later(self.config.handshake_timeout, self._hello_due, peer)
            return protocol

        return create

    def _hello_due(self, peer: Peer) -> None:
        """An inbound connection whose HELLO has not verified ``handshake_timeout`` after it
        began is closed with TIMEOUT (the caps count connections only from their HELLO)."""
        if peer.authenticated.done() or peer.session.closed:
            return
        self.breach_counts["hello"] += 1
        log.info("inbound connection closed: no HELLO within %.1f s", self.config.handshake_timeout)
        peer.session.close(WireCode.TIMEOUT, "no HELLO within the handshake timeout")
        peer._service()

    def _inbound(self, peer: Peer) -> None:
        if self.limits is None or peer.node_id not in self.limits.validators:
            host = self.binding.remote_host(peer.protocol._quic)
            if (why := self.caps.admit(peer, host)) is not None:
                self.breach_counts["connections"] += 1  # with the stream bounds' metric
                log.info("peer %s at %s refused: %s", peer.node_id.hex()[:16], host, why)
                peer.session.close(WireCode.RATE_LIMITED, why)
                return
        self.inbound.put_nowait(peer)

    def _breached(self, peer: Peer, breach: Breach) -> None:
        # a peer's bad input, refused: INFO and a metric, not an operator's warning
        self.breaches.append((peer.node_id, breach))
        self.breach_counts[breach.rule.value] += 1
        log.info("peer %s disconnected: %s", peer.node_id.hex()[:16], breach.detail)

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
