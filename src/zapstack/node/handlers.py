"""The node's stream handlers: which pipeline takes each inbound stream type.

Contract
--------
:func:`stream_handlers` builds the endpoint's table (stream type -> handler
factory) for one node:

* TX_SUBMIT -> the tx receive pipeline (stages 1-5) -> mempool; the
  submitter is answered on the stream (``mempool.answer``);
* PROPOSAL / CERT_SHARES / BLOCK_PUSH -> the consensus :class:`~zapstack.node.inbox.Inbox`:
  only validators may open these (the transport disconnects anyone else on
  the type byte, :mod:`zapstack.node.limits`; a stream from a non-validator
  that still reaches here is refused on its first byte), the whole message
  is buffered (:class:`Collect`, at most ``MAX_MESSAGE`` and the transport's
  per-type bound), its first byte must be a message type that belongs on
  that stream, it must decode, and it must come from the validator it names
  (otherwise it is ignored).  A malformed stream is reset with its wire code and costs the
  sending peer reputation, one score per offence;
* MEMPOOL_GOSSIP -> every well-formed tx of the batch into the mempool
  (:func:`take_gossip`: the pool's lookups before the signature; a bad or
  refused tx is skipped, a bad length ends the batch);
* HEADER_RANGE / STATE_CHUNK -> the bootstrap server.

The DHT adds its own entries (DHT_RPC, BLOCK_CHUNK).  Handlers run on the
event loop and never block; partial buffers are dropped when a stream is
reset or its connection ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from zapstack.errors import RemoteProtocolError, WireCode, ZapError
from zapstack.mempool import Mempool
from zapstack.mempool.actions import verify_tx
from zapstack.node.config import MAX_GOSSIP
from zapstack.node.wire import MAX_MESSAGE, STREAM_OF, MsgType, decode
from zapstack.transport.events import End, HandlerAction, Reject
from zapstack.transport.handler import StreamHandler, StreamInfo
from zapstack.transport.streams import StreamType
from zapstack.verify.sigcache import VerifiedCache
from zapstack.zap.frames import parse_tx
from zapstack.zap.schema import MAX_TX_SIZE

if TYPE_CHECKING:
    from zapstack.node.node import Node

__all__ = ["Collect", "stream_handlers", "take_gossip"]

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


def take_gossip(
    mempool: Mempool, chain_id: int, data: bytes, cache: VerifiedCache | None = None
) -> int:
    """Insert every admissible tx of a MEMPOOL_GOSSIP batch (concatenated tx frames).

    Gossip obeys the admission rules of TX_SUBMIT.  Per tx: the frame checks,
    then the pool's lookups (:meth:`Mempool.precheck`: duplicate, fee, nonce
    window, per-sender cap, balance), and only then the signature, which goes
    into ``cache`` (block verify skips it later).  Returns how many were admitted.
    """
    at, admitted = 0, 0
    while at + 12 <= len(data):
        size = int.from_bytes(data[at + 8 : at + 12], "little")
        if not 0 < size <= MAX_TX_SIZE or at + size > len(data):
            break
        with contextlib.suppress(ZapError):
            view = parse_tx(data[at : at + size], chain_id=chain_id, verify_signatures=False)
            mempool.precheck(view)
            if verify_tx(view):
                if cache is not None:
                    cache.add(view)
                mempool.insert(view)
                admitted += 1
        at += size
    return admitted


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
            take_gossip(node.mempool, node.g.chain_id, data, node.sigcache)
            return None

        return Collect(MAX_GOSSIP, done)

    def bootstrap(info: StreamInfo) -> StreamHandler:
        return node.boot.handler(info.peer, info.stream_type)

    return {
        StreamType.TX_SUBMIT: node.txsvc.factory,
        StreamType.PROPOSAL: consensus,
        StreamType.CERT_SHARES: consensus,
        StreamType.BLOCK_PUSH: consensus,
        StreamType.MEMPOOL_GOSSIP: gossip,
        StreamType.HEADER_RANGE: bootstrap,
        StreamType.STATE_CHUNK: bootstrap,
    }
