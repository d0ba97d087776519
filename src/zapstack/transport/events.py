"""Values exchanged with the sans-IO session: commands, events, handler actions.

Contract
--------
* :class:`Command` values go *down* to the QUIC library (the adapter executes
  them in order: ``SendStream``, ``ResetStream``, ``StopSending``,
  ``CloseConnection``, ``RequestCredit``).
* :class:`SessionEvent` values go *up* to the node / tests / metrics.
* Handler actions are what a per-stream handler returns (``Reply``,
  ``Reject``, ``Authenticate``).  Handlers never call into the session.

All are frozen, slotted dataclasses; ``bytes_received`` always counts payload
bytes (the stream-type byte excluded) that the session delivered to the handler.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from zapstack.transport.streams import StreamType

__all__ = [
    "Authenticate",
    "CloseConnection",
    "Command",
    "ConnectionEnded",
    "End",
    "HandlerAction",
    "Reject",
    "Reply",
    "RequestCredit",
    "ResetStream",
    "SendBlocked",
    "SendStream",
    "SendUnblocked",
    "SessionEvent",
    "StopSending",
    "StreamEnded",
    "StreamOpened",
    "StreamReady",
    "StreamStopped",
]

# --------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class SendStream:
    """Queue bytes on a stream (and optionally FIN)."""

    stream_id: int
    """QUIC stream id."""
    data: bytes
    """Bytes to queue; may be empty when only ``fin`` is sent."""
    fin: bool
    """Whether this ends the sending side."""


@dataclass(frozen=True, slots=True)
class ResetStream:
    """Abort our sending side: QUIC ``RESET_STREAM(code)``."""

    stream_id: int
    """QUIC stream id."""
    code: int
    """Application error code (a :class:`~zapstack.errors.WireCode` value)."""


@dataclass(frozen=True, slots=True)
class StopSending:
    """Ask the peer to stop sending: QUIC ``STOP_SENDING(code)``."""

    stream_id: int
    """QUIC stream id."""
    code: int
    """Application error code (a :class:`~zapstack.errors.WireCode` value)."""


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close the whole connection (every stream to this peer ends)."""

    code: int
    """Error code on the CONNECTION_CLOSE frame."""
    reason: str
    """Human-readable reason phrase."""


@dataclass(frozen=True, slots=True)
class RequestCredit:
    """Opens are queued for lack of stream credit: elicit a packet from the peer.

    The adapter sends a PING; a peer that raised MAX_STREAMS lazily (aioquic)
    piggybacks the update on its acknowledgement.
    """

    bidirectional: bool
    """Which stream kind is waiting."""


Command = SendStream | ResetStream | StopSending | CloseConnection | RequestCredit

# ----------------------------------------------------------------- events


class End(enum.Enum):
    """How a stream (one direction of it) ended."""

    FIN = "fin"
    """The peer finished its sending side cleanly."""
    RESET = "reset"
    """The peer sent RESET_STREAM: the partial buffer is dropped."""
    REJECTED = "rejected"
    """Our handler (or the type check) refused the stream: we sent STOP_SENDING."""
    CANCELLED = "cancelled"
    """We cancelled our own sending side (CancelWrite): we sent RESET_STREAM."""
    STOPPED = "stopped"
    """The peer sent STOP_SENDING: we stopped and treat the request as cancelled."""
    ABORTED = "aborted"
    """The connection ended underneath the stream."""


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """A peer-opened stream named its type and got a handler."""

    stream_id: int
    """QUIC stream id."""
    stream_type: StreamType
    """The type byte it opened with."""


@dataclass(frozen=True, slots=True)
class StreamReady:
    """A locally requested open got stream credit; writes may start."""

    stream_id: int
    """QUIC stream id (allocated when the open was requested)."""
    stream_type: StreamType
    """The type byte it was opened with."""


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """One direction of a stream reached a terminal state."""

    stream_id: int
    """QUIC stream id."""
    stream_type: StreamType | None
    """Its type, or ``None`` if it ended before its type byte arrived."""
    end: End
    """How it ended."""
    code: int | None
    """The error code of the reset / stop, ``None`` for FIN."""
    receiving: bool
    """``True`` for our receiving side, ``False`` for our sending side."""
    bytes_received: int
    """Payload bytes delivered to the handler before the end."""
    peer_down_for_request: bool
    """``True`` when a REQUEST stream we opened was reset or aborted by the peer:
    the caller must try another peer for this request (LP-0202)."""


@dataclass(frozen=True, slots=True)
class StreamStopped:
    """The peer sent STOP_SENDING on our sending side (request cancelled by peer)."""

    stream_id: int
    """QUIC stream id."""
    code: int
    """The peer's code; we reset our side with the same code."""


@dataclass(frozen=True, slots=True)
class SendBlocked:
    """Flow control blocks the stream (STREAM_DATA_BLOCKED): writers back off."""

    stream_id: int
    """QUIC stream id."""


@dataclass(frozen=True, slots=True)
class SendUnblocked:
    """The flow-control window reopened; writers may continue."""

    stream_id: int
    """QUIC stream id."""


@dataclass(frozen=True, slots=True)
class ConnectionEnded:
    """The connection is gone; every one of its streams ended with it."""

    code: int
    """CONNECTION_CLOSE error code (local or remote)."""
    reason: str
    """Reason phrase."""
    streams: tuple[int, ...]
    """Ids of the streams that were still open, in ascending order."""


SessionEvent = (
    StreamOpened
    | StreamReady
    | StreamEnded
    | StreamStopped
    | SendBlocked
    | SendUnblocked
    | ConnectionEnded
)

# -------------------------------------------------------- handler actions


@dataclass(frozen=True, slots=True)
class Reply:
    """Write bytes back on a bidirectional stream (request/response)."""

    data: bytes
    """Bytes to send."""
    fin: bool = False
    """Whether they end our sending side."""


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the stream: STOP_SENDING(code) (and RESET_STREAM(code) if bidirectional)."""

    code: int
    """A :class:`~zapstack.errors.WireCode` value."""


@dataclass(frozen=True, slots=True)
class Authenticate:
    """The HELLO handler proved the dialer's identity: release held streams."""

    node_id: bytes
    """sha256 of the dialer's SubjectPublicKeyInfo DER."""


HandlerAction = Reply | Reject | Authenticate
