"""zapstack.transport: QUIC streams between nodes (LP-0202 §QUIC stream isolation).

Layers (import only downward):

* :mod:`~zapstack.transport.streams` -- the stream-type table (first byte of
  every stream) and its roles; :class:`zapstack.errors.WireCode` is the error
  code table.
* :mod:`~zapstack.transport.signals` -- LP-0202's consumer-action table as data.
* :mod:`~zapstack.transport.streamids` / :mod:`~zapstack.transport.streamtable`
  -- stream ids and credit; the per-stream half state machines.
* :mod:`~zapstack.transport.session` -- the sans-IO per-connection session on
  top of them: type dispatch to per-stream handlers, the HELLO gate, consumer
  actions.  No IO, no clock.
* :mod:`~zapstack.transport.handler` / :mod:`~zapstack.transport.events` --
  the handler interface and the values exchanged with the session.
* :mod:`~zapstack.transport.identity` -- node keys, self-signed certs, HELLO.
* :mod:`~zapstack.transport.driver` (endpoint) and
  :mod:`~zapstack.transport.peer` (one connection) with the ``qh3`` and
  ``aioquic`` bindings -- the only modules that touch asyncio / a QUIC library (import them
  explicitly; this package does not import them so sans-IO users need neither).
* :mod:`zapstack.testing.loopback` -- two sessions wired in memory.

Concurrency: sessions are single-threaded objects driven by one caller.
Unwind: ``cancel_write`` / ``stop_reading`` / ``close`` are idempotent.
"""

from zapstack.transport.events import (
    Authenticate,
    ConnectionEnded,
    End,
    Reject,
    Reply,
    StreamEnded,
    StreamOpened,
    StreamReady,
    StreamStopped,
)
from zapstack.transport.handler import NO_ACTIONS, HandlerFactory, StreamHandler, StreamInfo
from zapstack.transport.session import Session
from zapstack.transport.signals import CONSUMER_ACTIONS, ConsumerAction, QuicSignal
from zapstack.transport.streams import STREAM_TYPES, Direction, Opener, Role, StreamSpec, StreamType

__all__ = [
    "CONSUMER_ACTIONS",
    "NO_ACTIONS",
    "STREAM_TYPES",
    "Authenticate",
    "ConnectionEnded",
    "ConsumerAction",
    "Direction",
    "End",
    "HandlerFactory",
    "Opener",
    "QuicSignal",
    "Reject",
    "Reply",
    "Role",
    "Session",
    "StreamEnded",
    "StreamHandler",
    "StreamInfo",
    "StreamOpened",
    "StreamReady",
    "StreamSpec",
    "StreamStopped",
    "StreamType",
]
