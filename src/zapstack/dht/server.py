"""The server side of a sans-IO DHT node: answer one authenticated request.

The transport opens one DHT stream per inbound RPC, feeds its bytes to a
:class:`~zapstack.dht.wire.MessageReader` and hands the request to
:meth:`DhtServer.handle_request` (through
:meth:`DhtNode.handle_request <zapstack.dht.node.DhtNode.handle_request>`)
with the peer's **authenticated** contact (node id = sha256 of the TLS public
key).  The server charges the peer's token bucket (:data:`REQUEST_COST`), marks
the peer live in the routing table, answers from the routing table / record
store / served blocks (the ``_HANDLERS`` table: request type -> handler), and
returns the response message.  Any refusal raises
:class:`~zapstack.errors.RemoteProtocolError`: the transport resets the stream
with its ``code`` (``RATE_LIMITED``, ``NOT_FOUND``, ``BAD_FIELD`` ...).

The routing table, record store and rate limiter are shared with the node's
client side (one thread owns them all); ``drop_block`` is idempotent.  No IO.
"""

from __future__ import annotations

from collections.abc import Callable

from zapstack.dht.blocks import BlockLayout, ServedBlock
from zapstack.dht.ids import Contact
from zapstack.dht.messages import (
    AddProvider,
    FindNode,
    FindValue,
    GetChunk,
    GetHeader,
    GetProviders,
    Message,
    Nodes,
    Ping,
    Pong,
    ProviderAck,
    Providers,
    Store,
    Stored,
    Value,
)
from zapstack.dht.records import RateLimiter, RecordStore
from zapstack.dht.routing import RoutingTable
from zapstack.errors import RemoteProtocolError, WireCode

__all__ = ["REQUEST_COST", "DhtServer"]

REQUEST_COST: dict[type[Message], float] = {
    Ping: 1.0,
    FindNode: 1.0,
    FindValue: 1.0,
    GetProviders: 1.0,
    Store: 4.0,
    AddProvider: 2.0,
    GetHeader: 1.0,
    GetChunk: 0.25,
}
"""Token-bucket cost of each request type; any other type is not a request."""


class DhtServer:
    """Answers inbound requests for one node (see the module docstring)."""

    def __init__(
        self, routing: RoutingTable, records: RecordStore, limiter: RateLimiter, *, k: int
    ) -> None:
        self.routing, self.records, self.limiter, self.k = routing, records, limiter, k
        self.blocks: dict[bytes, ServedBlock] = {}

    def handle_request(self, peer: Contact, msg: Message, now: float) -> Message:
        """Answer ``msg`` from the authenticated ``peer``; raise RemoteProtocolError to reset."""
        cost = REQUEST_COST.get(type(msg))
        if cost is None:
            raise RemoteProtocolError(
                f"{type(msg).__name__} is not a request", code=WireCode.STREAM_PROTOCOL_VIOLATION
            )
        if not self.limiter.allow(peer.node_id, now, cost):
            raise RemoteProtocolError("rate limit exceeded", code=WireCode.RATE_LIMITED)
        self.routing.seen(peer, now)
        return _HANDLERS[type(msg)](self, peer, msg, now)

    def _h_ping(self, peer: Contact, msg: Message, now: float) -> Message:
        return Pong()

    def _h_find_node(self, peer: Contact, msg: Message, now: float) -> Message:
        assert isinstance(msg, FindNode)
        return Nodes(self._closest_for(peer, msg.target))

    def _h_find_value(self, peer: Contact, msg: Message, now: float) -> Message:
        assert isinstance(msg, FindValue)
        value = self.records.get_value(msg.key, now)
        if value is not None:
            return Value(msg.key, value)
        return Nodes(self._closest_for(peer, msg.key))

    def _h_store(self, peer: Contact, msg: Message, now: float) -> Message:
        assert isinstance(msg, Store)
        self.records.put_value(msg.key, msg.value, now)
        return Stored()

    def _h_add_provider(self, peer: Contact, msg: Message, now: float) -> Message:
        assert isinstance(msg, AddProvider)
        self.records.add_provider(msg.key, Contact(peer.node_id, msg.addr), now)
        return ProviderAck()

    def _h_get_providers(self, peer: Contact, msg: Message, now: float) -> Message:
        assert isinstance(msg, GetProviders)
        provs = tuple(self.records.get_providers(msg.key, now)[: self.k])
        return Providers(provs, self._closest_for(peer, msg.key))

    def _h_get_header(self, peer: Contact, msg: Message, now: float) -> Message:
        assert isinstance(msg, GetHeader)
        return self._served(msg.block_id).header_msg()

    def _h_get_chunk(self, peer: Contact, msg: Message, now: float) -> Message:
        assert isinstance(msg, GetChunk)
        return self._served(msg.block_id).chunk_msg(msg.index)

    def _served(self, block_id: bytes) -> ServedBlock:
        block = self.blocks.get(block_id)
        if block is None:
            raise RemoteProtocolError("block not held", code=WireCode.NOT_FOUND)
        return block

    def _closest_for(self, peer: Contact, target: bytes) -> tuple[Contact, ...]:
        cs = [c for c in self.routing.closest(target, self.k + 1) if c.node_id != peer.node_id]
        return tuple(cs[: self.k])

    def serve_block(self, block: bytes, layout: BlockLayout) -> bytes:
        """Hold ``block`` for GET_HEADER / GET_CHUNK; return its id."""
        served = ServedBlock(block, layout)
        self.blocks[served.block_id] = served
        return served.block_id

    def drop_block(self, block_id: bytes) -> None:
        """Stop serving ``block_id`` (idempotent)."""
        self.blocks.pop(block_id, None)


_Handler = Callable[[DhtServer, Contact, Message, float], Message]
_HANDLERS: dict[type[Message], _Handler] = {
    Ping: DhtServer._h_ping,
    FindNode: DhtServer._h_find_node,
    FindValue: DhtServer._h_find_value,
    Store: DhtServer._h_store,
    AddProvider: DhtServer._h_add_provider,
    GetProviders: DhtServer._h_get_providers,
    GetHeader: DhtServer._h_get_header,
    GetChunk: DhtServer._h_get_chunk,
}
"""Request type -> handler; the keys equal REQUEST_COST's (a test checks)."""
