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

Each stream has two halves, each in one :class:`Half` state::

    receiving:  WAITING (for the type byte) -> OPEN -> DONE(end)
    sending:    WAITING (for stream credit) -> OPEN -> DONE(end)

A half that does not exist (the receiving half of a stream we opened
unidirectionally, the sending half of a peer's unidirectional stream) is
ABSENT.  A stream is forgotten once both halves are ABSENT or DONE; late
frames for a forgotten stream are ignored.  Peer stream ids open in order
(RFC 9000 §2.1) but their first bytes may arrive out of order, so the session
keeps the highest index seen plus the set of lower indices not seen yet
(bounded by the stream limit): any other id at or below it is forgotten.

Stream-level QUIC conditions map to consumer actions through one table,
:data:`CONSUMER_ACTIONS` (LP-0202 §"QUIC stream isolation invariants"), and
every action touches only the one stream it names -- except
``CLOSE_CONNECTION``, whose scope is the connection.

Unwind rules: ``cancel_write``, ``stop_reading`` and ``close`` are idempotent
and legal from any state (a second call, or a call on a finished or forgotten
stream, is a no-op).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from zapstack.errors import LocalProtocolError, WireCode, ZapError
from zapstack.transport.events import (
    Authenticate,
    CloseConnection,
    Command,
    ConnectionEnded,
    End,
    HandlerAction,
    Reject,
    Reply,
    RequestCredit,
    ResetStream,
    SendBlocked,
    SendStream,
    SendUnblocked,
    SessionEvent,
    StopSending,
    StreamEnded,
    StreamOpened,
    StreamReady,
    StreamStopped,
)
from zapstack.transport.handler import HandlerFactory, StreamHandler, StreamInfo
from zapstack.transport.streams import Direction, Opener, Role, StreamType, spec_of

__all__ = [
    "CONSUMER_ACTIONS",
    "FLOW_CONTROL_ERROR",
    "ConsumerAction",
    "Half",
    "QuicSignal",
    "Session",
]

FLOW_CONTROL_ERROR = 0x03
"""The QUIC transport error code FLOW_CONTROL_ERROR (RFC 9000 §20.1)."""


class QuicSignal(enum.Enum):
    """Stream-level conditions a QUIC library reports (LP-0202 error table)."""

    STREAM_DATA_BLOCKED = "STREAM_DATA_BLOCKED"
    RESET_STREAM = "RESET_STREAM"
    STOP_SENDING = "STOP_SENDING"
    FLOW_CONTROL_ERROR = "FLOW_CONTROL_ERROR"
    STREAM_LIMIT_ERROR = "STREAM_LIMIT_ERROR"


class ConsumerAction(enum.Enum):
    """What the consumer does about a :class:`QuicSignal`."""

    BACK_OFF = "back off; let the flow-control window open"
    DROP_PARTIAL = "drop the partial buffer; request streams: mark peer down for it"
    STOP_AND_CANCEL = "stop transmitting; treat the request as cancelled by the peer"
    CLOSE_CONNECTION = "bug: close the connection"
    WAIT_FOR_CREDIT = "back off: queue the open until the peer grants stream credit"


CONSUMER_ACTIONS: dict[QuicSignal, ConsumerAction] = {
    QuicSignal.STREAM_DATA_BLOCKED: ConsumerAction.BACK_OFF,
    QuicSignal.RESET_STREAM: ConsumerAction.DROP_PARTIAL,
    QuicSignal.STOP_SENDING: ConsumerAction.STOP_AND_CANCEL,
    QuicSignal.FLOW_CONTROL_ERROR: ConsumerAction.CLOSE_CONNECTION,
    QuicSignal.STREAM_LIMIT_ERROR: ConsumerAction.WAIT_FOR_CREDIT,
}
"""LP-0202's consumer-action table, as data.  The session dispatches through it."""


class Half(enum.Enum):
    """State of one direction of a stream."""

    ABSENT = "absent"
    WAITING = "waiting"
    OPEN = "open"
    DONE = "done"


@dataclass(slots=True)
class _Stream:
    stream_id: int
    local: bool
    bidi: bool
    stream_type: StreamType | None
    handler: StreamHandler | None
    recv: Half
    send: Half
    bytes_received: int = 0
    held: list[bytes] = field(default_factory=list)
    held_fin: bool = False
    blocked: bool = False
    send_end: End | None = None
    send_code: int | None = None


def _is_bidi(stream_id: int) -> bool:
    return stream_id & 2 == 0


def _wire_code(code: int | None) -> WireCode | None:
    """``code`` as a WireCode when it is one (peers may send any integer)."""
    if code is None or code not in WireCode._value2member_map_:
        return None
    return WireCode(code)


class Session:
    """The stream bookkeeping of one connection.  See the module docstring."""

    def __init__(
        self,
        *,
        is_client: bool,
        handlers: Mapping[StreamType, HandlerFactory],
        peer: bytes = b"",
        require_auth: bool = False,
        max_held_bytes: int = 1 << 20,
    ) -> None:
        """Create a session.

        Parameters: ``is_client`` -- we are the QUIC client (dialer);
        ``handlers`` -- stream type -> handler factory for peer-opened streams;
        ``peer`` -- the peer's node id when already known (the dialer knows
        whom it dialed); ``require_auth`` -- hold every peer stream but HELLO
        until a handler returns :class:`Authenticate` (bounded by
        ``max_held_bytes``, past which the connection is closed).
        """
        self.is_client = is_client
        self.peer = peer
        self._handlers = dict(handlers)
        self._authenticated = not require_auth
        self._max_held = max_held_bytes
        self._held_bytes = 0
        self._streams: dict[int, _Stream] = {}
        self._commands: deque[Command] = deque()
        self._events: deque[SessionEvent] = deque()
        self._next_local = {False: 2 if is_client else 3, True: 0 if is_client else 1}
        self._credit = {False: 0, True: 0}
        self._queued: dict[bool, deque[int]] = {False: deque(), True: deque()}
        self._max_remote_seen = {False: -1, True: -1}
        self._unseen: dict[bool, set[int]] = {False: set(), True: set()}
        self._closed = False
        self._bug_reason = ""
        self._actions: dict[ConsumerAction, Callable[[int, int], None]] = {
            ConsumerAction.BACK_OFF: self._back_off,
            ConsumerAction.DROP_PARTIAL: self._drop_partial,
            ConsumerAction.STOP_AND_CANCEL: self._stop_and_cancel,
            ConsumerAction.CLOSE_CONNECTION: self._close_for_bug,
            ConsumerAction.WAIT_FOR_CREDIT: self._wait_for_credit,
        }

    # ------------------------------------------------------------ outputs

    def next_command(self) -> Command | None:
        """The next command for the QUIC library, or ``None``."""
        return self._commands.popleft() if self._commands else None

    def next_event(self) -> SessionEvent | None:
        """The next event for the layer above, or ``None``."""
        return self._events.popleft() if self._events else None

    # --------------------------------------------------------- inspection

    @property
    def closed(self) -> bool:
        """Whether the connection has ended (locally or remotely)."""
        return self._closed

    @property
    def authenticated(self) -> bool:
        """Whether peer streams are dispatched (no HELLO pending)."""
        return self._authenticated

    def open_streams(self) -> tuple[int, ...]:
        """Ids of the streams not yet forgotten, ascending."""
        return tuple(sorted(self._streams))

    def queued_opens(self, *, bidirectional: bool = False) -> int:
        """How many local opens wait for stream credit."""
        return len(self._queued[bidirectional])

    def is_blocked(self, stream_id: int) -> bool:
        """Whether writers on ``stream_id`` must back off (flow control)."""
        stream = self._streams.get(stream_id)
        return stream is not None and stream.blocked

    def is_writable(self, stream_id: int) -> bool:
        """Whether ``send`` on ``stream_id`` is legal now."""
        stream = self._streams.get(stream_id)
        return stream is not None and stream.send is Half.OPEN

    def send_end(self, stream_id: int) -> tuple[End, int | None] | None:
        """How our sending half ended, if it did and the stream is still known."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.send_end is None:
            return None
        return stream.send_end, stream.send_code

    # ----------------------------------------------------- local actions

    def open_stream(self, stream_type: StreamType, handler: StreamHandler | None = None) -> int:
        """Open a stream of ``stream_type``; return its QUIC stream id.

        The type byte is queued at once when stream credit allows; otherwise
        the open waits (STREAM_LIMIT -> WAIT_FOR_CREDIT) and :class:`StreamReady`
        reports when it may be written.  ``handler`` receives the reply of a
        bidirectional stream.
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
        stream_id = self._next_local[bidi]
        self._next_local[bidi] += 4
        self._streams[stream_id] = _Stream(
            stream_id=stream_id,
            local=True,
            bidi=bidi,
            stream_type=stream_type,
            handler=handler,
            recv=Half.OPEN if bidi else Half.ABSENT,
            send=Half.WAITING,
        )
        if stream_id // 4 < self._credit[bidi] and not self._queued[bidi]:
            self._grant(stream_id)
        else:
            self._signal(QuicSignal.STREAM_LIMIT_ERROR, stream_id, 0)
        return stream_id

    def send(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        """Queue ``data`` (and FIN) on our sending half of ``stream_id``."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.send is not Half.OPEN:
            raise LocalProtocolError(
                f"send on stream {stream_id}: sending half is "
                + ("forgotten" if stream is None else stream.send.value),
                code=_wire_code(None if stream is None else stream.send_code),
            )
        self._commands.append(SendStream(stream_id, bytes(data), fin))
        if fin:
            self._end_send(stream, End.FIN, None)

    def cancel_write(self, stream_id: int, code: int) -> None:
        """CancelWrite: RESET_STREAM(code) on our sending half.  Idempotent."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.send in (Half.ABSENT, Half.DONE):
            return
        if stream.send is Half.WAITING:
            self._queued[stream.bidi].remove(stream_id)
        else:
            self._commands.append(ResetStream(stream_id, code))
        self._end_send(stream, End.CANCELLED, code)

    def stop_reading(self, stream_id: int, code: int) -> None:
        """StopSending(code) on our receiving half.  Idempotent."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.recv in (Half.ABSENT, Half.DONE):
            return
        self._commands.append(StopSending(stream_id, code))
        self._end_recv(stream, End.REJECTED, code, notify_handler=False)

    def close(self, code: int = WireCode.NO_ERROR, reason: str = "") -> None:
        """Close the connection: every stream ends.  Idempotent."""
        if self._closed:
            return
        self._commands.append(CloseConnection(code, reason))
        self._abort_all(code, reason)

    # --------------------------------------------------- inputs from QUIC

    def set_credit(self, *, uni: int, bidi: int) -> None:
        """The peer's cumulative MAX_STREAMS for each kind; releases queued opens."""
        for is_bidi, value in ((False, uni), (True, bidi)):
            self._credit[is_bidi] = max(self._credit[is_bidi], value)
            queue = self._queued[is_bidi]
            while queue and queue[0] // 4 < self._credit[is_bidi]:
                self._grant(queue.popleft())

    def stream_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        """Bytes (in order) the QUIC library delivered on ``stream_id``."""
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
        if stream.handler is None:  # held until the HELLO authenticates the peer
            self._hold(stream, data, fin)
            return
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
            self._signal(QuicSignal.STREAM_DATA_BLOCKED, stream_id, 0)
            return
        stream = self._streams.get(stream_id)
        if stream is not None and stream.blocked:
            stream.blocked = False
            self._events.append(SendUnblocked(stream_id))

    def flow_control_error(self, reason: str) -> None:
        """A flow-control contract violation was detected (ours or the peer's)."""
        self._bug_reason = reason
        self._signal(QuicSignal.FLOW_CONTROL_ERROR, -1, FLOW_CONTROL_ERROR)

    def connection_terminated(self, code: int, reason: str) -> None:
        """The QUIC connection ended (CONNECTION_CLOSE, idle timeout, TLS error)."""
        self._abort_all(code, reason)

    # ------------------------------------------------ consumer actions

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
        bidi = _is_bidi(stream_id)
        if not self._queued[bidi]:
            self._commands.append(RequestCredit(bidi))
        self._queued[bidi].append(stream_id)

    # ----------------------------------------------------------- helpers

    def _grant(self, stream_id: int) -> None:
        stream = self._streams[stream_id]
        assert stream.stream_type is not None
        stream.send = Half.OPEN
        self._commands.append(SendStream(stream_id, bytes((stream.stream_type,)), False))
        self._events.append(StreamReady(stream_id, stream.stream_type))

    def _accept(self, stream_id: int) -> _Stream | None:
        local = (stream_id & 1) == (0 if self.is_client else 1)
        bidi = _is_bidi(stream_id)
        index, seen = stream_id // 4, self._max_remote_seen[bidi]
        if local:
            return None
        if index > seen:
            # opening stream n implicitly opens every lower one (RFC 9000 §2.1);
            # their first bytes may still arrive later: remember the gap
            self._unseen[bidi].update(range(seen + 1, index))
            self._max_remote_seen[bidi] = index
        elif index in self._unseen[bidi]:
            self._unseen[bidi].discard(index)
        else:
            return None  # forgotten stream: late frames are ignored
        stream = _Stream(
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

    def _take_type(self, stream: _Stream, byte: int) -> None:
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
        if self._authenticated or spec.type is StreamType.HELLO:
            stream.handler = factory(self._info(stream))

    def _info(self, stream: _Stream) -> StreamInfo:
        assert stream.stream_type is not None
        spec = spec_of(stream.stream_type)
        assert spec is not None
        return StreamInfo(stream.stream_id, stream.stream_type, spec, stream.local, self.peer)

    def _refuse(self, stream: _Stream, code: int) -> None:
        self._commands.append(StopSending(stream.stream_id, code))
        if stream.bidi and stream.send is Half.OPEN:
            self._commands.append(ResetStream(stream.stream_id, code))
            self._end_send(stream, End.CANCELLED, code)
        self._end_recv(stream, End.REJECTED, code, notify_handler=False)

    def _hold(self, stream: _Stream, data: bytes, fin: bool) -> None:
        self._held_bytes += len(data)
        if self._held_bytes > self._max_held:
            self.close(WireCode.RATE_LIMITED, "too much data before HELLO")
            return
        if data:
            stream.held.append(bytes(data))
        stream.held_fin = stream.held_fin or fin

    def _deliver(self, stream: _Stream, data: bytes, fin: bool) -> None:
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

    def _apply(self, stream: _Stream, actions: Sequence[HandlerAction]) -> None:
        for action in actions:
            if isinstance(action, Reject):
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

    def _end_recv(
        self, stream: _Stream, end: End, code: int | None, *, notify_handler: bool
    ) -> None:
        stream.recv = Half.DONE
        if notify_handler and stream.handler is not None:
            stream.handler.on_terminated(end, code)
        self._events.append(
            StreamEnded(
                stream.stream_id,
                stream.stream_type,
                end,
                code,
                True,
                stream.bytes_received,
                self._peer_down(stream, end),
            )
        )
        self._maybe_forget(stream)

    def _end_send(self, stream: _Stream, end: End, code: int | None) -> None:
        stream.send = Half.DONE
        stream.send_end, stream.send_code = end, code
        stream.blocked = False
        self._events.append(
            StreamEnded(
                stream.stream_id,
                stream.stream_type,
                end,
                code,
                False,
                stream.bytes_received,
                False,
            )
        )
        self._maybe_forget(stream)

    def _peer_down(self, stream: _Stream, end: End) -> bool:
        if not stream.local or end not in (End.RESET, End.ABORTED):
            return False
        spec = spec_of(stream.stream_type) if stream.stream_type is not None else None
        return spec is not None and spec.role is Role.REQUEST

    def _maybe_forget(self, stream: _Stream) -> None:
        done = (Half.ABSENT, Half.DONE)
        if stream.recv in done and stream.send in done:
            self._streams.pop(stream.stream_id, None)

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
        for queue in self._queued.values():
            queue.clear()
        self._events.append(ConnectionEnded(code, reason, ids))
