"""One QUIC connection driven through its sans-IO session: the asyncio side of a peer.

:class:`Peer` owns one :class:`~zapstack.transport.session.Session` and the
library connection (the protocol object) it runs on.  It

* translates library events into session inputs (one table,
  ``_EVENT_INPUTS``, keyed by event class name -- qh3 and aioquic share them);
  replies on streams we opened are merged per stream over one drain
  (:mod:`.coalesce`), and a request the peer sent is served as it arrives (a reply
  of ``EARLY_SEND`` bytes or more is transmitted at once),
* executes session commands against the library and transmits (the commands a
  library may refuse harmlessly are a table, ``_MAY_FAIL``; any other refusal
  means our view diverged from the library's and closes the connection); a reply that
  :class:`~.replybudget.ReplyBudget` refuses goes out as ``RESET_STREAM(RATE_LIMITED)``,
* feeds the session what only the library knows: peer stream credit
  (MAX_STREAMS), per-stream send backlog (STREAM_DATA_BLOCKED -> back off),
* on the dialer, checks the listener's certificate against the node id it dialed and
  proves its own identity on a HELLO stream; on the listener, resolves
  :attr:`Peer.authenticated` once the HELLO verified (then the endpoint's inbound caps).

:class:`OutStream` (:mod:`.outstream`) is our sending side of a stream we opened.
:class:`~zapstack.transport.driver.Endpoint` makes peers (and re-exports both names).

Concurrency: one event loop; every method is called on it.  Awaiting methods are
bounded by the endpoint's ``TransportConfig.op_timeout`` and raise
:class:`~zapstack.errors.TransportError` when the connection fails under them.  Unwind:
:meth:`Peer.close` and :meth:`OutStream.cancel_write` are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zapstack.errors import TransportError, WireCode
from zapstack.transport.coalesce import DataCoalescer
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
from zapstack.transport.handler import StreamHandler, with_responder
from zapstack.transport.identity import HelloHandler, encode_hello
from zapstack.transport.identity import node_id_of_cert_der as _node_id_of_cert
from zapstack.transport.outstream import OutStream
from zapstack.transport.replybudget import ReplyBudget
from zapstack.transport.session import Session
from zapstack.transport.streams import StreamType

if TYPE_CHECKING:
    from zapstack.transport.driver import Endpoint

__all__ = ["RECENT_EVENTS", "OutStream", "Peer"]

EARLY_SEND = 16 * 1024
"""Reply bytes that are sent at once, not at the end of the loop step (:meth:`Peer._on_data`)."""
RECENT_EVENTS = 256
"""Session events a peer keeps (:attr:`Peer.events`): not all (thousands of streams a second)."""


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
        host = functools.cache(functools.partial(self.binding.remote_host, quic))  # read once
        handlers = {st: with_responder(f, self, host) for st, f in endpoint.handlers.items()}
        if not is_client:
            handlers[StreamType.HELLO] = lambda info: HelloHandler(
                endpoint.identity.node_id, self.binding.odcid(quic)
            )
        self.session = Session(
            is_client=is_client,
            handlers=handlers,
            require_auth=not is_client,
            limits=endpoint.limits,
        )
        self.authenticated: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()
        self.close_info: ConnectionEnded | None = None
        self.events: deque[object] = deque(maxlen=RECENT_EVENTS)
        """The last :data:`RECENT_EVENTS` session events, in order (diagnostics, tests)."""
        self._outs: dict[int, OutStream] = {}
        """Our streams whose sending side has not ended yet (told of its end, then dropped)."""
        self._ready: dict[int, asyncio.Future[None]] = {}
        self._incoming = DataCoalescer()
        """This drain's replies on streams we opened, merged per stream (:mod:`.coalesce`)."""
        self._local_bit = 0 if is_client else 1
        """Bit 0 of the ids of the streams we open (QUIC: 0 client-initiated, 1 server)."""
        self._replies = ReplyBudget(endpoint.config.max_reply_backlog, local_bit=self._local_bit)
        self._backlog = functools.partial(self.binding.backlog, quic)  # the budget's reader
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        if endpoint.limits is not None:
            self._check_limits()

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
        out = self._outs[stream_id] = OutStream(self, stream_id, stream_type)
        if not self.session.is_writable(stream_id):
            future = asyncio.get_running_loop().create_future()
            self._ready[stream_id] = future
            self._service()
            await self._bounded(future, f"credit for stream {stream_id}")
        self._service()
        return out

    def stop_reading(self, stream_id: int, code: int) -> None:
        """StopSending(code) on our receiving half of ``stream_id``.  Idempotent."""
        self.session.stop_reading(stream_id, code)
        self._service()

    def refuse(self, stream_id: int, code: int) -> None:
        """StopSending(code) on our receiving half and, on a bidirectional stream,
        CancelWrite(code) on our sending half: ``code`` is the answer.  Idempotent."""
        self.session.stop_reading(stream_id, code)
        self.session.cancel_write(stream_id, code)
        self._service()

    def reply(self, stream_id: int, data: bytes) -> None:
        """Write ``data`` and FIN on our half of a peer-opened stream (no-op if it ended)."""
        if self.session.is_writable(stream_id):
            self.session.send(stream_id, data, fin=True)
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
        if handler is not Peer._on_data:
            self._pass_data()  # this drain's held data goes first: nothing reordered
        if handler is not None:
            handler(self, event)

    def _pass_data(self) -> None:
        """This drain's held data (replies on streams we opened) to the session, merged
        per stream: before any other event of the drain, and at its end."""
        if self._incoming:
            now = asyncio.get_running_loop().time()
            for stream_id, data, fin in self._incoming.drain():
                self.session.stream_data(stream_id, data, fin, now)

    def _on_data(self, event: Any) -> None:
        stream_id = event.stream_id
        if stream_id & 1 == self._local_bit:  # a reply to us: merged over the drain
            self._incoming.add(stream_id, event.data, event.end_stream)
            return
        now = asyncio.get_running_loop().time()
        self.session.stream_data(stream_id, event.data, event.end_stream, now)
        if self._execute_pending(self.protocol._quic) >= EARLY_SEND:  # a large reply
            self.protocol.transmit_now()  # leaves before the next request is read

    def _check_limits(self) -> None:
        """Rate and deadline of the peer's unfinished streams, every check interval."""
        if self.session.closed or self.endpoint.limits is None:
            return
        loop = asyncio.get_running_loop()
        if self.session.check_limits(loop.time()) is not None:
            self._service()
            return
        loop.call_later(self.endpoint.limits.check_interval, self._check_limits)

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
        self.session.identify(got)
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
        self._pass_data()
        self._service(transmit=False)

    def _service(self, *, transmit: bool = True) -> None:
        quic = self.protocol._quic
        session = self.session
        uni, bidi = self.binding.credit(quic)
        session.set_credit(uni=uni, bidi=bidi)
        while True:  # an event may queue commands (a refused HELLO closes): drain both
            self._execute_pending(quic)
            event = session.next_event()
            if event is None:
                break
            self._on_session_event(event)
        self._wake_waiters()
        if transmit:
            self.protocol.transmit_soon()  # many replies in one loop step: one transmit

    def _wake_waiters(self) -> None:
        """Resolve every ``_until`` wait whose condition now holds: on each service *and*
        after each library transmit (what shrinks a backlog: a writer in back-off learns
        of it then, not at the next datagram or timer, one ACK delay later)."""
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

    def _execute_pending(self, quic: Any) -> int:
        """Execute the session's queued commands in order; the stream bytes given the library."""
        sent = 0
        while (command := self.session.next_command()) is not None:
            sent += self._execute(quic, command)
        return sent

    def _execute(self, quic: Any, command: object) -> int:
        """Execute one command; the stream bytes it handed the library."""
        try:
            if isinstance(command, SendStream):
                sid = command.stream_id
                if not self._replies.admit(sid, len(command.data), self._backlog):  # unread
                    quic.reset_stream(sid, WireCode.RATE_LIMITED)
                    self.session.cancel_write(sid, WireCode.RATE_LIMITED)  # a reply in parts ends
                    return 0
                quic.send_stream_data(sid, command.data, command.fin)
                return len(command.data)
            if isinstance(command, ResetStream):
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
        return 0

    def _ping_for_credit(self, bidirectional: bool) -> None:
        """PING now and again every ``credit_ping_interval`` while opens are queued (aioquic
        raises MAX_STREAMS only on a packet sent *after* the stream was discarded)."""
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
            out = None if event.receiving else self._outs.pop(event.stream_id, None)
            if out is not None:
                out.end = (event.end, event.code)
            if event.stream_type is StreamType.HELLO and event.end is not End.FIN:
                self.session.close(WireCode.BAD_SIGNATURE, "HELLO refused")
        elif isinstance(event, ConnectionEnded):
            self.close_info = event
            self.endpoint.caps.gone(self)
            if self.session.breach is not None:
                self.endpoint._breached(self, self.session.breach)
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


_MAY_FAIL = (ResetStream, StopSending, CloseConnection)
"""Commands a library may refuse harmlessly: a late reset/stop (unwinds are idempotent), a close."""

_EVENT_INPUTS: dict[str, Callable[[Peer, Any], None]] = {
    "StreamDataReceived": Peer._on_data,
    "StreamReset": Peer._on_reset,
    "StopSendingReceived": Peer._on_stop,
    "ConnectionTerminated": Peer._on_terminated,
    "HandshakeCompleted": Peer._on_handshake,
}
"""Library event class name -> session input (identical names in qh3 and aioquic)."""
