"""A sans-IO Kademlia node: α-parallel client operations; requests go to its server side.

Theory of operation
-------------------
*Server side.*  :meth:`DhtNode.handle_request` answers one inbound request
from an **authenticated** peer, or raises
:class:`~zapstack.errors.RemoteProtocolError` to reset its stream; the node
delegates it (and ``serve_block`` / ``drop_block``) to its
:class:`~zapstack.dht.server.DhtServer`, which shares the node's routing
table, record store and rate limiter.

*Client side.*  :meth:`find_node`, :meth:`find_value`, :meth:`get_providers`,
:meth:`store` and :meth:`provide` start an *operation*: an iterative
:class:`~zapstack.dht.lookup.Lookup` (α queries in flight) and, for STORE and
ADD_PROVIDER, a publish phase to the k closest nodes found.  The node emits
:class:`SendRpc` actions; the transport writes ``data`` on a new stream and
reports the reply with :meth:`rpc_response` (decoded message) or the failure
with :meth:`rpc_failed`.  A reply of the wrong type, or a value whose sha256
is not the key, raises RemoteProtocolError after the node has dropped that
peer.  :meth:`handle_timer` times RPCs out (:class:`CancelRpc`) and refreshes
stale buckets.  Finished operations are reported as :class:`OpDone`.

Nothing here does I/O; ``now`` and the RNG are injected.
"""

from __future__ import annotations

import enum
import hashlib
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from zapstack.dht.blocks import BlockLayout, ServedBlock
from zapstack.dht.ids import Contact, node_id
from zapstack.dht.lookup import Lookup, LookupMode, LookupResult
from zapstack.dht.messages import (
    AddProvider,
    FindNode,
    FindValue,
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
from zapstack.dht.routing import K, RoutingTable
from zapstack.dht.server import DhtServer
from zapstack.dht.wire import encode
from zapstack.errors import RemoteProtocolError, WireCode

__all__ = ["CancelRpc", "DhtNode", "NodeAction", "OpDone", "OpKind", "SendRpc"]

ALPHA = 3
"""Queries in flight per lookup."""


class OpKind(enum.Enum):
    """What a client operation does."""

    FIND_NODE = "find_node"
    FIND_VALUE = "find_value"
    GET_PROVIDERS = "get_providers"
    STORE = "store"
    PROVIDE = "provide"
    REFRESH = "refresh"


_MODE = {
    OpKind.FIND_NODE: LookupMode.NODES,
    OpKind.REFRESH: LookupMode.NODES,
    OpKind.STORE: LookupMode.NODES,
    OpKind.PROVIDE: LookupMode.NODES,
    OpKind.FIND_VALUE: LookupMode.VALUE,
    OpKind.GET_PROVIDERS: LookupMode.PROVIDERS,
}

_QUERY: dict[LookupMode, Callable[[bytes], Message]] = {
    LookupMode.NODES: FindNode,
    LookupMode.VALUE: FindValue,
    LookupMode.PROVIDERS: GetProviders,
}

_REPLY: dict[type[Message], tuple[type[Message], ...]] = {
    Ping: (Pong,),
    FindNode: (Nodes,),
    FindValue: (Value, Nodes),
    GetProviders: (Providers,),
    Store: (Stored,),
    AddProvider: (ProviderAck,),
}
"""Which response types answer which request."""


@dataclass(frozen=True, slots=True)
class SendRpc:
    """Open a DHT stream to ``to``, write ``data``, finish; report the reply."""

    rpc_id: int
    """Correlates the reply (:meth:`DhtNode.rpc_response` / ``rpc_failed``)."""
    to: Contact
    """The peer to ask."""
    data: bytes
    """Encoded request message."""


@dataclass(frozen=True, slots=True)
class CancelRpc:
    """Reset our stream of ``rpc_id`` with ``code`` (we gave up on it)."""

    rpc_id: int
    """The abandoned RPC."""
    code: WireCode
    """Reset code (TIMEOUT)."""


@dataclass(frozen=True, slots=True)
class OpDone:
    """A client operation finished."""

    op_id: int
    """The id returned when the operation started."""
    kind: OpKind
    """What it was."""
    target: bytes
    """Looked-up id / key."""
    result: LookupResult
    """The lookup's outcome (closest nodes, value, providers)."""
    acked: tuple[bytes, ...] = ()
    """STORE / PROVIDE: node ids that acknowledged the record."""


NodeAction = SendRpc | CancelRpc | OpDone


@dataclass(slots=True)
class _Op:
    kind: OpKind
    target: bytes
    lookup: Lookup
    value: bytes = b""
    publishing: set[int] = field(default_factory=set)
    acked: list[bytes] = field(default_factory=list)
    result: LookupResult | None = None


@dataclass(slots=True)
class _Rpc:
    op_id: int
    to: Contact
    request: Message
    deadline: float


class DhtNode:
    """One DHT participant (see the module docstring)."""

    def __init__(
        self,
        public_key: bytes,
        addr: str,
        *,
        rng: random.Random,
        now: float = 0.0,
        k: int = K,
        alpha: int = ALPHA,
        rpc_timeout: float = 2.0,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.contact = Contact(node_id(public_key), addr)
        self.id = self.contact.node_id
        self.k, self.alpha, self.rpc_timeout = k, alpha, rpc_timeout
        self.rng = rng
        self.routing = RoutingTable(self.id, k=k, now=now)
        self.records = RecordStore(self.id, k=k)
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.server = DhtServer(self.routing, self.records, self.limiter, k=k)
        self.blocks: dict[bytes, ServedBlock] = self.server.blocks
        self._actions: deque[NodeAction] = deque()
        self._ops: dict[int, _Op] = {}
        self._rpcs: dict[int, _Rpc] = {}
        self._next_id = 1

    # ------------------------------------------------------------ server side

    def handle_request(self, peer: Contact, msg: Message, now: float) -> Message:
        """Answer ``msg`` from the authenticated ``peer`` (:meth:`DhtServer.handle_request`)."""
        return self.server.handle_request(peer, msg, now)

    def serve_block(self, block: bytes, layout: BlockLayout) -> bytes:
        """Hold ``block`` for GET_HEADER / GET_CHUNK; return its id."""
        return self.server.serve_block(block, layout)

    def drop_block(self, block_id: bytes) -> None:
        """Stop serving ``block_id`` (idempotent)."""
        self.server.drop_block(block_id)

    # ------------------------------------------------------------ client side

    def bootstrap(self, seeds: list[Contact], now: float) -> int:
        """Join via ``seeds``: look up our own id starting from them."""
        return self._start(OpKind.FIND_NODE, self.id, now, seeds=seeds)

    def find_node(self, target: bytes, now: float) -> int:
        """Start a FIND_NODE lookup; returns the op id reported in :class:`OpDone`."""
        return self._start(OpKind.FIND_NODE, target, now)

    def find_value(self, key: bytes, now: float) -> int:
        """Start a FIND_VALUE lookup for the value whose sha256 is ``key``."""
        op_id = self._start(OpKind.FIND_VALUE, key, now, pump=False)
        local = self.records.get_value(key, now)
        if local is not None:
            self._ops[op_id].lookup.value = local
        self._pump(op_id, now)
        return op_id

    def get_providers(self, key: bytes, now: float) -> int:
        """Start a provider lookup for block ``key``."""
        op_id = self._start(OpKind.GET_PROVIDERS, key, now, pump=False)
        self._ops[op_id].lookup.add_providers(tuple(self.records.get_providers(key, now)))
        self._pump(op_id, now)
        return op_id

    def store(self, value: bytes, now: float) -> int:
        """Store ``value`` under sha256(value) locally and at the k closest nodes."""
        key = hashlib.sha256(value).digest()
        self.records.put_value(key, value, now)
        op_id = self._start(OpKind.STORE, key, now, pump=False)
        self._ops[op_id].value = value
        self._pump(op_id, now)
        return op_id

    def provide(self, key: bytes, now: float) -> int:
        """Announce ourselves as a provider of block ``key`` at the k closest nodes."""
        self.records.add_provider(key, self.contact, now)
        return self._start(OpKind.PROVIDE, key, now)

    def _start(
        self,
        kind: OpKind,
        target: bytes,
        now: float,
        *,
        seeds: list[Contact] | None = None,
        pump: bool = True,
    ) -> int:
        op_id = self._new_id()
        start = seeds if seeds is not None else self.routing.closest(target)
        lookup = Lookup(self.id, target, _MODE[kind], start, k=self.k, alpha=self.alpha)
        self._ops[op_id] = _Op(kind, target, lookup)
        self.routing.touch(target, now)
        if pump:
            self._pump(op_id, now)
        return op_id

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _send(self, op_id: int, to: Contact, request: Message, now: float) -> None:
        rpc_id = self._new_id()
        self._rpcs[rpc_id] = _Rpc(op_id, to, request, now + self.rpc_timeout)
        self._actions.append(SendRpc(rpc_id, to, encode(request)))

    def _pump(self, op_id: int, now: float) -> None:
        op = self._ops.get(op_id)
        if op is None:
            return
        if op.result is None:
            for c in op.lookup.next_queries():
                self._send(op_id, c, _QUERY[op.lookup.mode](op.target), now)
            if not op.lookup.finished:
                return
            op.result = op.lookup.result()
            publish: Message | None = None
            if op.kind is OpKind.STORE:
                publish = Store(op.target, op.value)
            elif op.kind is OpKind.PROVIDE:
                publish = AddProvider(op.target, self.contact.addr)
            if publish is not None:
                for c in op.result.closest:
                    self._send(op_id, c, publish, now)
                    op.publishing.add(self._next_id - 1)
        if not op.publishing:
            del self._ops[op_id]
            self._actions.append(OpDone(op_id, op.kind, op.target, op.result, tuple(op.acked)))

    def rpc_response(self, rpc_id: int, msg: Message, now: float) -> None:
        """The reply to ``rpc_id``; RemoteProtocolError if it breaks the protocol."""
        rpc = self._rpcs.pop(rpc_id, None)
        if rpc is None:
            return  # timed out or cancelled earlier: late replies are dropped
        op = self._ops.get(rpc.op_id)
        code = _reply_error(rpc.request, msg)
        if code is not None:
            self._failed(rpc, op, now, drop=True)
            raise RemoteProtocolError(
                f"{type(msg).__name__} is not a valid answer to {type(rpc.request).__name__}",
                code=code,
            )
        self.routing.seen(rpc.to, now)
        if op is None:
            return
        if rpc_id in op.publishing:
            op.publishing.discard(rpc_id)
            op.acked.append(rpc.to.node_id)
        elif isinstance(msg, Nodes):
            op.lookup.on_reply(rpc.to.node_id, msg.contacts)
        elif isinstance(msg, Value):
            op.lookup.on_reply(rpc.to.node_id, value=msg.value)
        elif isinstance(msg, Providers):
            op.lookup.on_reply(rpc.to.node_id, msg.closer, providers=msg.providers)
        self._pump(rpc.op_id, now)

    def rpc_failed(self, rpc_id: int, code: WireCode, now: float) -> None:
        """``rpc_id`` failed (reset with ``code``, connection lost).  Idempotent."""
        rpc = self._rpcs.pop(rpc_id, None)
        if rpc is not None:
            self._failed(rpc, self._ops.get(rpc.op_id), now, drop=False)

    def _failed(self, rpc: _Rpc, op: _Op | None, now: float, *, drop: bool) -> None:
        if drop:
            self.routing.remove(rpc.to.node_id)
        else:
            self.routing.failed(rpc.to.node_id)
        if op is None:
            return
        if op.publishing:
            op.publishing = {r for r in op.publishing if r in self._rpcs}
        else:
            op.lookup.on_failure(rpc.to.node_id)
        self._pump(rpc.op_id, now)

    def handle_timer(self, now: float) -> None:
        """Time out RPCs past their deadline; refresh stale buckets."""
        for rpc_id, rpc in sorted(self._rpcs.items()):
            if rpc.deadline <= now:
                self._actions.append(CancelRpc(rpc_id, WireCode.TIMEOUT))
                self.rpc_failed(rpc_id, WireCode.TIMEOUT, now)
        for target in self.routing.refresh_targets(now, self.rng):
            self._start(OpKind.REFRESH, target, now)

    def next_deadline(self) -> float | None:
        """Earliest RPC deadline (bucket refresh is checked on every timer call)."""
        return min((r.deadline for r in self._rpcs.values()), default=None)

    def next_action(self) -> NodeAction | None:
        """The oldest pending action, or None."""
        return self._actions.popleft() if self._actions else None


def _reply_error(request: Message, reply: Message) -> WireCode | None:
    """Why ``reply`` cannot answer ``request`` (None when it can)."""
    if not isinstance(reply, _REPLY[type(request)]):
        return WireCode.STREAM_PROTOCOL_VIOLATION
    if isinstance(reply, Value):
        assert isinstance(request, FindValue)
        if reply.key != request.key or hashlib.sha256(reply.value).digest() != reply.key:
            return WireCode.BAD_FIELD
    return None
