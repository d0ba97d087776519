"""The stream state machines of one connection: two halves per stream, each transition a value.

Each stream has two halves, each in one :class:`Half` state::

    receiving:  WAITING (for the type byte) -> OPEN -> DONE(end)
    sending:    WAITING (for stream credit) -> OPEN -> DONE(end)

A half that does not exist (the receiving half of a stream we opened
unidirectionally, the sending half of a peer's unidirectional stream) is
ABSENT.  :class:`StreamTable` holds the :class:`StreamRecord` of every live
stream, the command queue (for the QUIC library) and the event queue (for the
layer above), and makes every transition: a half opens (``_grant``: the type
byte goes out), data is sent, a half ends (FIN, cancelled, stopped, refused,
reset, aborted) with one :class:`~zapstack.transport.events.StreamEnded`
each, and a stream is forgotten once both halves are ABSENT or DONE.  The
connection-level logic (which ids are new, type dispatch, handlers, the HELLO
gate, LP-0202's consumer actions) is :class:`~zapstack.transport.session.Session`,
which extends this class.

Unwind rules: ``cancel_write`` and ``stop_reading`` are idempotent and legal
from any state (a second call, or a call on a finished or forgotten stream,
is a no-op).  No IO, no clock, never buffers outgoing bytes; single-threaded.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from zapstack.errors import LocalProtocolError, WireCode
from zapstack.transport.events import (
    Command,
    End,
    ResetStream,
    SendStream,
    SessionEvent,
    StopSending,
    StreamEnded,
    StreamReady,
)
from zapstack.transport.handler import StreamHandler
from zapstack.transport.streamids import StreamIds
from zapstack.transport.streams import Role, StreamType, spec_of

__all__ = ["Half", "StreamRecord", "StreamTable", "wire_code"]


class Half(enum.Enum):
    """State of one direction of a stream."""

    ABSENT = "absent"
    WAITING = "waiting"
    OPEN = "open"
    DONE = "done"


@dataclass(slots=True)
class StreamRecord:
    """One stream's two halves and what the session keeps for it."""

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


def wire_code(code: int | None) -> WireCode | None:
    """``code`` as a WireCode when it is one (peers may send any integer)."""
    if code is None or code not in WireCode._value2member_map_:
        return None
    return WireCode(code)


class StreamTable:
    """Live streams, their transitions and the two output queues (see the module docstring)."""

    def __init__(self, *, is_client: bool) -> None:
        self.is_client = is_client
        self._streams: dict[int, StreamRecord] = {}
        self._commands: deque[Command] = deque()
        self._events: deque[SessionEvent] = deque()
        self._ids = StreamIds(is_client=is_client)
        self._closed = False

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

    def open_streams(self) -> tuple[int, ...]:
        """Ids of the streams not yet forgotten, ascending."""
        return tuple(sorted(self._streams))

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

    def send(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        """Queue ``data`` (and FIN) on our sending half of ``stream_id``."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.send is not Half.OPEN:
            raise LocalProtocolError(
                f"send on stream {stream_id}: sending half is "
                + ("forgotten" if stream is None else stream.send.value),
                code=wire_code(None if stream is None else stream.send_code),
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
            self._ids.dequeue(stream_id)
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

    # ----------------------------------------------------------- transitions

    def _grant(self, stream_id: int) -> None:
        stream = self._streams[stream_id]
        assert stream.stream_type is not None
        stream.send = Half.OPEN
        self._commands.append(SendStream(stream_id, bytes((stream.stream_type,)), False))
        self._events.append(StreamReady(stream_id, stream.stream_type))

    def _refuse(self, stream: StreamRecord, code: int) -> None:
        self._commands.append(StopSending(stream.stream_id, code))
        if stream.bidi and stream.send is Half.OPEN:
            self._commands.append(ResetStream(stream.stream_id, code))
            self._end_send(stream, End.CANCELLED, code)
        self._end_recv(stream, End.REJECTED, code, notify_handler=False)

    def _end_recv(
        self, stream: StreamRecord, end: End, code: int | None, *, notify_handler: bool
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

    def _end_send(self, stream: StreamRecord, end: End, code: int | None) -> None:
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

    def _peer_down(self, stream: StreamRecord, end: End) -> bool:
        if not stream.local or end not in (End.RESET, End.ABORTED):
            return False
        spec = spec_of(stream.stream_type) if stream.stream_type is not None else None
        return spec is not None and spec.role is Role.REQUEST

    def _maybe_forget(self, stream: StreamRecord) -> None:
        done = (Half.ABSENT, Half.DONE)
        if stream.recv in done and stream.send in done:
            self._streams.pop(stream.stream_id, None)
