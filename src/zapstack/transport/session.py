"""Sans-IO per-connection stream session: type dispatch, state, consumer actions.

Theory of operation
-------------------
One :class:`Session` per QUIC connection.  The adapter feeds it what the QUIC
library reports (``stream_data``, ``stream_reset``, ``stop_sending``,
``send_blocked``, ``set_credit``, ``connection_terminated``) and drains
:meth:`next_command` (executed against the QUIC library, in order) and
:meth:`next_event` (reported upward).  The session never does IO, never
reads a clock and never buffers outgoing bytes (no retry buffer above the
transport, LP-0202).

Each stream is two halves with their own state machines; those, the output
queues and every per-stream transition are :class:`~zapstack.transport.streamtable.StreamTable`'s,
which this class extends with the connection: stream ids and credit
(:mod:`~zapstack.transport.streamids`), type dispatch of peer streams to
handlers, the HELLO gate (``require_auth``: peer streams but HELLO are held,
bounded, until a handler authenticates the peer), the per-peer stream bounds
(``limits``: checked before a byte is buffered; a breach closes the
connection) and the consumer actions.

Stream-level QUIC conditions map to consumer actions through one table,
``signals.CONSUMER_ACTIONS`` (LP-0202 §"QUIC stream isolation invariants"), and
every action touches only the one stream it names -- except
``CLOSE_CONNECTION``, whose scope is the connection.

Unwind rules: ``cancel_write``, ``stop_reading`` and ``close`` are idempotent
and legal from any state (a second call, or a call on a finished or forgotten
stream, is a no-op).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from zapstack.errors import LocalProtocolError, WireCode, ZapError
from zapstack.transport.events import (
    Authenticate,
    CloseConnection,
    ConnectionEnded,
    End,
    HandlerAction,
    Reject,
    Reply,
    RequestCredit,
    ResetStream,
    SendBlocked,
    SendUnblocked,
    StreamOpened,
    StreamStopped,
)
from zapstack.transport.handler import HandlerFactory, StreamHandler, StreamInfo
from zapstack.transport.limits import UNBOUNDED, Breach, LimitPolicy, PeerLimits
from zapstack.transport.signals import (
    CONSUMER_ACTIONS,
    FLOW_CONTROL_ERROR,
    ConsumerAction,
    QuicSignal,
)
from zapstack.transport.streamids import is_bidi
from zapstack.transport.streams import Direction, Opener, StreamType, spec_of
from zapstack.transport.streamtable import Half, StreamRecord, StreamTable

__all__ = ["Session"]


class Session(StreamTable):
    """The stream bookkeeping of one connection.  See the module docstring."""

    def __init__(
        self,
        *,
        is_client: bool,
        handlers: Mapping[StreamType, HandlerFactory],
        peer: bytes = b"",
        require_auth: bool = False,
        max_held_bytes: int = 1 << 20,
        limits: LimitPolicy | None = None,
    ) -> None:
        """Create a session.

        Parameters: ``is_client`` -- we are the QUIC client (dialer);
        ``handlers`` -- stream type -> handler factory for peer-opened streams;
        ``peer`` -- the peer's node id when already known (the dialer knows
        whom it dialed); ``require_auth`` -- hold every peer stream but HELLO
        until a handler returns :class:`Authenticate` (bounded by
        ``max_held_bytes``, past which the connection is closed);
        ``limits`` -- per-peer stream bounds (:mod:`~zapstack.transport.limits`):
        a peer stream that breaks one closes the connection with the rule's code.
        """
        super().__init__(is_client=is_client)
        self.peer = peer
        self._handlers = dict(handlers)
        self._authenticated = not require_auth
        self._max_held = max_held_bytes
        self._held_bytes = 0
        self._bug_reason = ""
        self._acct = PeerLimits(limits or UNBOUNDED, peer)
        self._now = 0.0
        self.breach: Breach | None = None
        """The bound the peer broke, when that closed the connection."""
        self._actions: dict[ConsumerAction, Callable[[int, int], None]] = {
            ConsumerAction.BACK_OFF: self._back_off,
            ConsumerAction.DROP_PARTIAL: self._drop_partial,
            ConsumerAction.STOP_AND_CANCEL: self._stop_and_cancel,
            ConsumerAction.CLOSE_CONNECTION: self._close_for_bug,
            ConsumerAction.WAIT_FOR_CREDIT: self._wait_for_credit,
        }

    @property
    def authenticated(self) -> bool:
        """Whether peer streams are dispatched (no HELLO pending)."""
        return self._authenticated

    def queued_opens(self, *, bidirectional: bool = False) -> int:
        return self._ids.queued(bidirectional)  # local opens waiting for stream credit

    def open_stream(self, stream_type: StreamType, handler: StreamHandler | None = None) -> int:
        """Open a stream of ``stream_type``; return its QUIC stream id.

        The type byte is queued at once when stream credit allows; otherwise
        the open waits (STREAM_LIMIT -> WAIT_FOR_CREDIT) and :class:`StreamReady`
        reports when it may be written.  ``handler`` receives the reply of a
        bidirectional stream (without one, the reply is discarded).
        """
        if self._closed:
            raise LocalProtocolError("open_stream on a closed connection")
        spec = spec_of(stream_type)
        if spec is None:
            raise LocalProtocolError(f"unknown stream type {stream_type:#x}")
        if spec.opener is Opener.DIALER and not self.is_client:
            raise LocalProtocolError(f"{stream_type.name} is opened by the dialer only")
        if spec.opener is Opener.LISTENER and self.is_client:
            raise LocalProtocolError(f"{stream_type.name} is opened by the listener only")
        bidi = spec.direction is Direction.BI
        if not bidi and handler is not None:
            raise LocalProtocolError("a unidirectional stream we open has no reply")
        stream_id = self._ids.allocate(bidi)
        self._streams[stream_id] = StreamRecord(
            stream_id=stream_id,
            local=True,
            bidi=bidi,
            stream_type=stream_type,
            handler=handler,
            recv=Half.OPEN if bidi else Half.ABSENT,
            send=Half.WAITING,
        )
        if self._ids.may_open(stream_id):
            self._grant(stream_id)
        else:
            self._signal(QuicSignal.STREAM_LIMIT_ERROR, stream_id, 0)
        return stream_id

    def close(self, code: int = WireCode.NO_ERROR, reason: str = "") -> None:
        """Close the connection: every stream ends.  Idempotent."""
        if self._closed:
            return
        self._commands.append(CloseConnection(code, reason))
        self._abort_all(code, reason)

    def set_credit(self, *, uni: int, bidi: int) -> None:
        """The peer's cumulative MAX_STREAMS for each kind; releases queued opens."""
        for stream_id in self._ids.raise_credit(uni=uni, bidi=bidi):
            self._grant(stream_id)

    def stream_data(self, stream_id: int, data: bytes, fin: bool, now: float | None = None) -> None:
        """Bytes (in order) the QUIC library delivered on ``stream_id`` (at ``now``)."""
        if now is not None:
            self._now = now
        if self._closed:
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._accept(stream_id)
            if stream is None:
                return
        if stream.recv is Half.WAITING and data:
            self._take_type(stream, data[0])
            data = data[1:]
        if stream.recv is not Half.OPEN:
            if stream.recv is Half.WAITING and fin:  # FIN before any type byte
                self._end_recv(stream, End.FIN, None, notify_handler=False)
            return
        if data and self._broke(self._acct.received(stream_id, len(data), self._now)):
            return  # bounds first: nothing is buffered past them
        if stream.handler is None and stream.local:  # a reply nobody reads: discarded
            if fin:
                self._end_recv(stream, End.FIN, None, notify_handler=False)
        elif stream.handler is None:  # held until the HELLO authenticates the peer
            self._hold(stream, data, fin)
        else:
            self._deliver(stream, data, fin)

    def stream_reset(self, stream_id: int, code: int) -> None:
        """The peer sent RESET_STREAM(code)."""
        self._signal(QuicSignal.RESET_STREAM, stream_id, code)

    def stop_sending(self, stream_id: int, code: int) -> None:
        """The peer sent STOP_SENDING(code)."""
        self._signal(QuicSignal.STOP_SENDING, stream_id, code)

    def send_blocked(self, stream_id: int, blocked: bool) -> None:
        """Flow control blocks (``True``) or unblocks (``False``) our sending half."""
        if blocked:
            return self._signal(QuicSignal.STREAM_DATA_BLOCKED, stream_id, 0)
        stream = self._streams.get(stream_id)
        if stream is not None and stream.blocked:
            stream.blocked = False
            self._events.append(SendUnblocked(stream_id))

    def flow_control_error(self, reason: str) -> None:
        """A flow-control contract violation was detected (ours or the peer's)."""
        self._bug_reason = reason
        self._signal(QuicSignal.FLOW_CONTROL_ERROR, -1, FLOW_CONTROL_ERROR)

    def identify(self, node_id: bytes) -> None:
        """The dialer verified the listener's certificate: it is ``node_id``."""
        self.peer = node_id
        self._broke(self._acct.authenticated(node_id))

    def check_limits(self, now: float) -> Breach | None:
        """Rate and deadline of every unfinished peer stream (call periodically)."""
        self._now = now
        if self._closed:
            return None
        breach = self._acct.check(now)
        self._broke(breach)
        return breach

    def connection_terminated(self, code: int, reason: str) -> None:
        """The QUIC connection ended (CONNECTION_CLOSE, idle timeout, TLS error)."""
        self._abort_all(code, reason)

    def _signal(self, signal: QuicSignal, stream_id: int, code: int) -> None:
        if self._closed:
            return
        self._actions[CONSUMER_ACTIONS[signal]](stream_id, code)

    def _back_off(self, stream_id: int, code: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None and stream.send is Half.OPEN and not stream.blocked:
            stream.blocked = True
            self._events.append(SendBlocked(stream_id))

    def _drop_partial(self, stream_id: int, code: int) -> None:
        stream = self._streams.get(stream_id) or self._accept(stream_id)
        if stream is None or stream.recv in (Half.ABSENT, Half.DONE):
            return
        if stream.held:
            self._held_bytes -= sum(len(chunk) for chunk in stream.held)
            stream.held.clear()
        self._end_recv(stream, End.RESET, code, notify_handler=True)

    def _stop_and_cancel(self, stream_id: int, code: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.send in (Half.ABSENT, Half.DONE):
            return
        self._events.append(StreamStopped(stream_id, code))
        self._commands.append(ResetStream(stream_id, code))
        self._end_send(stream, End.STOPPED, code)

    def _close_for_bug(self, stream_id: int, code: int) -> None:
        self.close(FLOW_CONTROL_ERROR, self._bug_reason or "flow control violated")

    def _wait_for_credit(self, stream_id: int, code: int) -> None:
        if self._ids.enqueue(stream_id):
            self._commands.append(RequestCredit(is_bidi(stream_id)))

    def _accept(self, stream_id: int) -> StreamRecord | None:
        if not self._ids.admit_remote(stream_id):
            return None  # ours, or forgotten: late frames are ignored
        bidi = is_bidi(stream_id)
        stream = StreamRecord(
            stream_id=stream_id,
            local=False,
            bidi=bidi,
            stream_type=None,
            handler=None,
            recv=Half.WAITING,
            send=Half.OPEN if bidi else Half.ABSENT,
        )
        self._streams[stream_id] = stream
        return stream

    def _take_type(self, stream: StreamRecord, byte: int) -> None:
        spec = spec_of(byte)
        if spec is None:
            self._refuse(stream, WireCode.UNKNOWN_STREAM_TYPE)
            return
        wrong_opener = (spec.opener is Opener.DIALER and self.is_client) or (
            spec.opener is Opener.LISTENER and not self.is_client
        )
        if (spec.direction is Direction.BI) != stream.bidi or wrong_opener:
            self._refuse(stream, WireCode.STREAM_PROTOCOL_VIOLATION)
            return
        factory = self._handlers.get(spec.type)
        if factory is None:
            self._refuse(stream, WireCode.UNKNOWN_STREAM_TYPE)
            return
        stream.stream_type = spec.type
        stream.recv = Half.OPEN
        self._events.append(StreamOpened(stream.stream_id, spec.type))
        if self._broke(self._acct.opened(stream.stream_id, spec.type, self._now)):
            return
        if self._authenticated or spec.type is StreamType.HELLO:
            stream.handler = factory(self._info(stream))

    def _info(self, stream: StreamRecord) -> StreamInfo:
        assert stream.stream_type is not None
        spec = spec_of(stream.stream_type)
        assert spec is not None
        return StreamInfo(stream.stream_id, stream.stream_type, spec, stream.local, self.peer)

    def _hold(self, stream: StreamRecord, data: bytes, fin: bool) -> None:
        self._held_bytes += len(data)
        if self._held_bytes > self._max_held:
            self.close(WireCode.RATE_LIMITED, "too much data before HELLO")
            return
        stream.held += [bytes(data)] if data else []
        stream.held_fin = stream.held_fin or fin

    def _deliver(self, stream: StreamRecord, data: bytes, fin: bool) -> None:
        handler = stream.handler
        assert handler is not None
        try:
            if data:
                stream.bytes_received += len(data)
                self._apply(stream, handler.on_data(data))
            if fin and stream.recv is Half.OPEN:
                self._end_recv(stream, End.FIN, None, notify_handler=False)
                self._apply(stream, handler.on_end())
        except ZapError as exc:
            self._apply(stream, (Reject(exc.code),))

    def _apply(self, stream: StreamRecord, actions: Sequence[HandlerAction]) -> None:
        for action in actions:
            if isinstance(action, Reject) and stream.stream_type is StreamType.HELLO:
                self.close(WireCode.BAD_SIGNATURE, "HELLO refused")  # even after its FIN
            elif isinstance(action, Reject):
                if stream.recv in (Half.WAITING, Half.OPEN):
                    self._refuse(stream, action.code)
                else:
                    self.cancel_write(stream.stream_id, action.code)
            elif isinstance(action, Reply):
                if stream.send is Half.OPEN:
                    self.send(stream.stream_id, action.data, fin=action.fin)
            elif isinstance(action, Authenticate):
                self._authenticate(action.node_id)

    def _authenticate(self, node_id: bytes) -> None:
        if self._authenticated:
            return
        self._authenticated = True
        self.peer = node_id
        if self._broke(self._acct.authenticated(node_id)):
            return  # a validators-only stream opened before the HELLO
        for stream_id in sorted(self._streams):
            stream = self._streams.get(stream_id)
            if stream is None or stream.local or stream.recv is not Half.OPEN:
                continue
            if stream.handler is not None or stream.stream_type is None:
                continue
            stream.handler = self._handlers[stream.stream_type](self._info(stream))
            held, stream.held = stream.held, []
            self._held_bytes -= sum(len(chunk) for chunk in held)
            for chunk in held:
                if stream.recv is Half.OPEN:
                    self._deliver(stream, chunk, False)
            if stream.held_fin and stream.recv is Half.OPEN:
                self._deliver(stream, b"", True)

    def _broke(self, breach: Breach | None) -> bool:
        """Disconnect the peer for ``breach`` (if any); ``True`` when it did."""
        if breach is None:
            return False
        self.breach = breach
        self.close(breach.code, f"{breach.rule.value}: {breach.stream_type.name} {breach.detail}")
        return True

    def _end_recv(
        self, stream: StreamRecord, end: End, code: int | None, *, notify_handler: bool
    ) -> None:
        self._acct.ended(stream.stream_id)
        super()._end_recv(stream, end, code, notify_handler=notify_handler)

    def _abort_all(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        ids = tuple(sorted(self._streams))
        for stream_id in ids:
            stream = self._streams[stream_id]
            if stream.recv in (Half.WAITING, Half.OPEN):
                self._end_recv(stream, End.ABORTED, code, notify_handler=True)
            if stream.send in (Half.WAITING, Half.OPEN):
                self._end_send(stream, End.ABORTED, code)
        self._streams.clear()
        self._ids.clear()
        self._events.append(ConnectionEnded(code, reason, ids))
