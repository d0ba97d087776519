"""The per-stream handler interface the session dispatches to.

Contract
--------
A handler is created per stream by the factory registered for the stream's
type (``Session(handlers={StreamType.TX_SUBMIT: factory, ...})``), or passed
explicitly when we open a bidirectional request stream (it then handles the
reply).  The session calls, in this order and never concurrently:

* ``on_data(data)`` zero or more times with the bytes *after* the type byte,
  exactly as they arrive (chunking depends on packet timing);
* then exactly one of ``on_end()`` (the peer sent FIN) or
  ``on_terminated(end, code)`` (reset by the peer, stopped, connection gone).

``on_data`` / ``on_end`` return handler actions (values, not callbacks):
``Reject(code)`` resets/stops the stream with a :class:`~zapstack.errors.WireCode`,
``Reply(data, fin)`` writes on a bidirectional stream, ``Authenticate`` is the
HELLO handler's verdict.  After ``Reject`` the handler receives nothing more
except, possibly, nothing at all: the session does not call ``on_terminated``
for an end it caused itself.  A handler that raises
:class:`~zapstack.errors.RemoteProtocolError` (or any ``ZapError`` with a code)
is treated as ``Reject(exc.code)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from zapstack.transport.events import End, HandlerAction
from zapstack.transport.streams import StreamSpec, StreamType

__all__ = [
    "NO_ACTIONS",
    "HandlerFactory",
    "Responder",
    "StreamHandler",
    "StreamInfo",
    "with_responder",
]

NO_ACTIONS: tuple[HandlerAction, ...] = ()
"""The empty action list: keep going."""


class Responder(Protocol):
    """The connection a stream belongs to, for a handler that answers after its ``on_end``
    returned (the work done elsewhere); each is a no-op once that half of the stream ended."""

    def reply(self, stream_id: int, data: bytes) -> None:
        """Write ``data`` and FIN on our half of a peer-opened stream."""
        ...

    def refuse(self, stream_id: int, code: int) -> None:
        """StopSending and CancelWrite with ``code``."""
        ...


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a handler factory learns about the stream it serves."""

    stream_id: int
    """QUIC stream id."""
    stream_type: StreamType
    """The stream's type byte."""
    spec: StreamSpec
    """Its row of the stream-type table."""
    local: bool
    """``True`` if we opened the stream."""
    peer: bytes
    """The peer's node id (32 bytes), or ``b""`` when unauthenticated."""
    responder: Responder | None = None
    """The connection, to answer later; None where no adapter runs the session (tests)."""
    host: str = ""
    """The peer's IP address as the adapter read it for the connection's first stream (""
    where no adapter runs the session): what a per-host bound counts by."""


class StreamHandler(Protocol):
    """Consumes one stream's bytes; see the module contract."""

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        """Bytes as they arrive; return actions (``NO_ACTIONS`` to continue)."""
        ...

    def on_end(self) -> Sequence[HandlerAction]:
        """The peer finished the stream (FIN); every byte has been delivered."""
        ...

    def on_terminated(self, end: End, code: int | None) -> None:
        """The stream ended abnormally (peer reset / stop / connection gone).

        Drop any partial buffer; ``code`` is the peer's or the connection's code.
        """
        ...


HandlerFactory = Callable[[StreamInfo], StreamHandler]
"""Creates the handler for a newly typed stream."""


def with_responder(
    factory: HandlerFactory, responder: Responder, host: Callable[[], str]
) -> HandlerFactory:
    """``factory``, its streams' :class:`StreamInfo` carrying ``responder`` (the adapter's
    connection object) and ``host()`` (the peer's address): the sans-IO session knows
    neither."""
    return lambda info: factory(replace(info, responder=responder, host=host()))
