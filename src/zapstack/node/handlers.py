"""The node's stream handlers: which pipeline takes each inbound stream type.

Contract
--------
:func:`stream_handlers` builds the endpoint's table (stream type -> handler
factory) for one node:

* TX_SUBMIT -> the tx receive pipeline (stages 1-5) -> mempool; the
  submitter is answered on the stream (``mempool.answer``); the signature is
  checked off the event loop (:mod:`zapstack.node.txpipe`);
* PROPOSAL / CERT_SHARES / BLOCK_PUSH -> the consensus :class:`~zapstack.node.inbox.Inbox`:
  only validators may open these (the transport disconnects anyone else on
  the type byte, :mod:`zapstack.node.limits`; a stream from a non-validator
  that still reaches here is refused on its first byte), the whole message
  is buffered (:class:`Collect`, at most ``MAX_MESSAGE`` and the transport's
  per-type bound), its first byte must be a message type that belongs on
  that stream, it must decode, and it must come from the validator it names
  (otherwise it is ignored).  A malformed stream is reset with its wire code and costs the
  sending peer reputation, one score per offence;
* MEMPOOL_GOSSIP -> every well-formed tx of the batch towards the mempool
  (:meth:`TxPipeline.take_gossip <zapstack.node.txpipe.TxPipeline.take_gossip>`:
  the pool's lookups on the loop, the signatures batched on the verify pool;
  a bad or refused tx is skipped, a bad length ends the batch);
* HEADER_RANGE / STATE_CHUNK -> the bootstrap server (large answers on the serving
  worker: :mod:`.stateserve`).

The DHT adds its own entries (DHT_RPC, BLOCK_CHUNK).  Handlers run on the
event loop and never block; partial buffers are dropped when a stream is
reset or its connection ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.node.config import MAX_GOSSIP
from zapstack.node.wire import MAX_MESSAGE, STREAM_OF, MsgType, decode
from zapstack.transport.events import End, HandlerAction, Reject
from zapstack.transport.handler import StreamHandler, StreamInfo
from zapstack.transport.streams import StreamType

if TYPE_CHECKING:
    from zapstack.node.node import Node

__all__ = ["Collect", "stream_handlers"]

_MSG_TYPES = frozenset(int(t) for t in MsgType)


class Collect:
    """Buffers one whole message stream (bounded); hands it over at FIN."""

    def __init__(
        self,
        limit: int,
        done: Callable[[bytes], list[HandlerAction] | None],
        first: Callable[[int], list[HandlerAction]] | None = None,
    ) -> None:
        self.buf = bytearray()
        self.limit = limit
        self.done = done
        self.first = first
        """Checks the first byte as soon as it lands (a bad one stops the stream)."""

    def on_data(self, data: bytes) -> list[HandlerAction]:
        if not self.buf and data and self.first is not None:
            refused = self.first(data[0])
            if refused:
                return refused
        self.buf += data
        if len(self.buf) > self.limit:
            self.buf = bytearray()
            return [Reject(WireCode.STREAM_PROTOCOL_VIOLATION)]
        return []

    def on_end(self) -> list[HandlerAction]:
        data, self.buf = bytes(self.buf), bytearray()
        return self.done(data) or []

    def on_terminated(self, end: End, code: int | None) -> None:
        self.buf = bytearray()  # drop the partial buffer (RESET_STREAM / connection gone)


def _consensus_handler(node: Node, info: StreamInfo) -> StreamHandler:
    """A PROPOSAL / CERT_SHARES / BLOCK_PUSH stream into the consensus inbox."""
    sender = node.conns.by_node_id.get(info.peer)

    def refuse(code: WireCode) -> list[HandlerAction]:
        node.rx.reputation.penalize(info.peer, code)  # one score per peer
        return [Reject(code)]

    def first(kind: int) -> list[HandlerAction]:
        if sender is None:  # the transport disconnects such a peer; never buffer it
            return [Reject(WireCode.STREAM_PROTOCOL_VIOLATION)]
        if kind in _MSG_TYPES and STREAM_OF[MsgType(kind)] == info.stream_type:
            return []
        return refuse(WireCode.STREAM_PROTOCOL_VIOLATION)

    def done(data: bytes) -> list[HandlerAction] | None:
        try:
            msg = decode(data, info.stream_type)
        except RemoteProtocolError as exc:
            return refuse(exc.code)
        if sender is None or msg.sender != sender:
            return None  # not from the validator it claims to be: ignore
        node.inbox.put(msg)
        return None

    return Collect(MAX_MESSAGE, done, first)


def stream_handlers(node: Node) -> dict[StreamType, Callable[[StreamInfo], StreamHandler]]:
    """Stream type -> handler factory for every pipeline the node serves."""

    def consensus(info: StreamInfo) -> StreamHandler:
        return _consensus_handler(node, info)

    def gossip(info: StreamInfo) -> StreamHandler:
        def done(data: bytes) -> list[HandlerAction] | None:
            node.tx.take_gossip(data)
            return None

        return Collect(MAX_GOSSIP, done)

    def served(info: StreamInfo) -> StreamHandler:  # large answers on a thread of their own
        return node.serving.handler(info)

    return {
        StreamType.TX_SUBMIT: node.txsvc.factory,
        StreamType.PROPOSAL: consensus,
        StreamType.CERT_SHARES: consensus,
        StreamType.BLOCK_PUSH: consensus,
        StreamType.MEMPOOL_GOSSIP: gossip,
        StreamType.HEADER_RANGE: served,
        StreamType.STATE_CHUNK: served,
    }
