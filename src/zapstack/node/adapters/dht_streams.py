"""The per-stream handlers of :mod:`zapstack.node.adapters.dht_quic` (sans-IO).

Every DHT RPC is one bidirectional stream (``docs/formats/dht.md`` §1):
Kademlia RPCs on ``DHT_RPC``, GET_HEADER / GET_CHUNK on ``BLOCK_CHUNK``.

* :class:`ServeStream` -- server side: the request's bytes go through a
  :class:`~zapstack.dht.wire.MessageReader`; at FIN the complete request goes
  to the ``answer`` callback with the peer's authenticated node id; a request
  of the wrong family for its stream type is rejected with
  ``STREAM_PROTOCOL_VIOLATION``, an empty one with ``TRUNCATED``, and a
  ``RemoteProtocolError`` from the reader resets the stream (the session does).
* :class:`ReplyStream` -- client side: the reply stream of one RPC or pull
  request; forwards bytes, FIN and termination to callbacks, then wakes the pump.

Concurrency: called by the transport session on the adapter's event loop
only.  Unwind: nothing to release; termination is forwarded once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from zapstack.dht.messages import GetChunk, GetHeader, Message
from zapstack.dht.wire import MessageReader
from zapstack.errors import WireCode
from zapstack.transport.events import End, HandlerAction, Reject
from zapstack.transport.handler import NO_ACTIONS, StreamInfo
from zapstack.transport.streams import StreamType

__all__ = ["Answer", "ReplyStream", "ServeStream", "stream_type_of", "wire_code"]

_CHUNK_FAMILY = (GetHeader, GetChunk)


def stream_type_of(msg: Message) -> StreamType:
    """The stream type a request travels on (GET_HEADER / GET_CHUNK: BLOCK_CHUNK)."""
    return StreamType.BLOCK_CHUNK if isinstance(msg, _CHUNK_FAMILY) else StreamType.DHT_RPC


Answer = Callable[[bytes, Message], Sequence[HandlerAction]]
"""``answer(peer_id, request)``: the actions that answer one complete request."""


class ServeStream:
    """Server side of one inbound DHT_RPC / BLOCK_CHUNK stream."""

    def __init__(self, answer: Answer, info: StreamInfo) -> None:
        self.answer, self.info = answer, info
        self.reader = MessageReader()

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        self.reader.receive_data(data)  # RemoteProtocolError -> the session resets
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        msg = self.reader.next_message()
        self.reader.end_of_stream()
        if msg is None:
            return (Reject(WireCode.TRUNCATED),)
        if stream_type_of(msg) is not self.info.stream_type:
            return (Reject(WireCode.STREAM_PROTOCOL_VIOLATION),)
        return self.answer(self.info.peer, msg)

    def on_terminated(self, end: End, code: int | None) -> None:
        pass


class ReplyStream:
    """Client side: the reply stream of one RPC or pull request."""

    def __init__(
        self,
        on_bytes: Callable[[bytes], None],
        on_end: Callable[[], None],
        on_gone: Callable[[End, int | None], None],
        wake: Callable[[], None],
    ) -> None:
        self._bytes, self._end, self._gone, self._wake = on_bytes, on_end, on_gone, wake

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        self._bytes(data)
        self._wake()
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        self._end()
        self._wake()
        return NO_ACTIONS

    def on_terminated(self, end: End, code: int | None) -> None:
        self._gone(end, code)
        self._wake()


def wire_code(code: int | None) -> WireCode:
    """A peer's integer code as a WireCode (unknown codes: CANCELLED)."""
    try:
        return WireCode(code if code is not None else WireCode.CANCELLED)
    except ValueError:
        return WireCode.CANCELLED
