"""An in-memory network that drives DHT nodes and chunk pulls with bytes.

This is a test and benchmark harness, not a transport: there are no sockets
and no asyncio.  It plays the transport adapter's part exactly as a QUIC
adapter would -- one stream per RPC, bytes delivered in pieces through
:class:`~zapstack.dht.wire.MessageReader`, ``RemoteProtocolError`` turned into
a stream reset, peer identity taken from the (simulated) handshake -- on a
virtual clock:

* every request reaches its server ``latency`` seconds after it is sent;
* a response travels back in pieces of ``piece_bytes``, the first after
  ``latency`` and each further one ``piece_gap`` seconds later, so a server
  can be disconnected *mid-transfer*;
* an offline address swallows requests (the caller's timeout fires); taking a
  node offline with :meth:`MemNet.disconnect` fails every RPC and pull stream
  it was part of, as a closed QUIC connection would.

Time only advances inside :meth:`MemNet.run`: to the next delivery or to the
earliest RPC / request deadline.  Everything is deterministic for a seed.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from zapstack.dht.chunk_actions import (
    CancelRequest,
    PullComplete,
    RequestChunk,
    RequestHeader,
    Stalled,
)
from zapstack.dht.chunks import ChunkPull
from zapstack.dht.ids import Contact
from zapstack.dht.messages import Message
from zapstack.dht.node import CancelRpc, DhtNode, OpDone, SendRpc
from zapstack.dht.wire import MessageReader, encode
from zapstack.errors import RemoteProtocolError, WireCode

__all__ = ["MemNet", "PullHandle"]


@dataclass(slots=True)
class PullHandle:
    """A chunk pull run by a node of the net."""

    client: str
    """Address of the pulling node."""
    pull: ChunkPull
    """The sans-IO pull state machine."""
    outcome: PullComplete | Stalled | None = None
    """The last terminal action seen (Stalled may be followed by progress)."""
    requests: list[tuple[str, int]] = field(default_factory=list)
    """Every (provider, index) request issued, in order."""


class MemNet:
    """Deterministic in-memory network of :class:`DhtNode` s."""

    def __init__(
        self,
        *,
        latency: float = 0.01,
        piece_bytes: int = 16 * 1024,
        piece_gap: float = 0.001,
        seed: int = 0,
    ) -> None:
        self.latency = latency
        self.piece_bytes = piece_bytes
        self.piece_gap = piece_gap
        self.rng = random.Random(seed)
        self.now = 0.0
        self.nodes: dict[str, DhtNode] = {}
        self.offline: set[str] = set()
        self.done: dict[str, dict[int, OpDone]] = {}
        self.pulls: list[PullHandle] = []
        self.resets: list[tuple[str, WireCode]] = []
        """(address that reset a stream, code), in order: every protocol error seen."""
        self._q: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._rpcs: dict[tuple[str, int], str] = {}  # (client, rpc id) -> server addr
        self._streams: set[tuple[int, str, int]] = set()  # live pull streams

    # ------------------------------------------------------------ topology

    def add(self, node: DhtNode) -> DhtNode:
        """Attach ``node`` (its contact address must be unique)."""
        self.nodes[node.contact.addr] = node
        self.done[node.contact.addr] = {}
        return node

    def disconnect(self, addr: str) -> None:
        """Take ``addr`` offline now: its RPCs and pull streams fail on both ends."""
        self.offline.add(addr)
        for (client, rpc_id), server in list(self._rpcs.items()):
            if addr in (client, server):
                del self._rpcs[(client, rpc_id)]
                if client != addr:
                    self.nodes[client].rpc_failed(rpc_id, WireCode.CANCELLED, self.now)
        for h in self.pulls:
            if h.client != addr:
                h.pull.peer_disconnected(addr, self.now)
        self._streams = {s for s in self._streams if s[1] != addr}

    # ------------------------------------------------------------ scheduling

    def _at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._q, (t, next(self._seq), fn))

    def _deadline(self) -> float:
        ts = [n.next_deadline() for a, n in self.nodes.items() if a not in self.offline]
        ts += [h.pull.next_deadline() for h in self.pulls if h.client not in self.offline]
        return min((t for t in ts if t is not None), default=float("inf"))

    def run(self, until: float | None = None, max_events: int = 2_000_000) -> None:
        """Deliver events and fire timers until idle (or past ``until``)."""
        for _ in range(max_events):
            self._drain()
            t_evt = self._q[0][0] if self._q else float("inf")
            t_tmr = self._deadline()
            t = min(t_evt, t_tmr)
            if t == float("inf") or (until is not None and t > until):
                break
            self.now = max(self.now, t)
            if t_evt <= t_tmr:
                heapq.heappop(self._q)[2]()
            else:
                for a, n in self.nodes.items():
                    if a not in self.offline:
                        n.handle_timer(self.now)
                for h in self.pulls:
                    if h.client not in self.offline:
                        h.pull.handle_timer(self.now)
        if until is not None:
            self.now = max(self.now, until)

    def wait(self, addr: str, op_id: int) -> OpDone:
        """Run until operation ``op_id`` of ``addr`` is done and return its result."""
        while op_id not in self.done[addr]:
            self.run(until=self.now + 1.0)
            if op_id not in self.done[addr] and not self._q and self._deadline() == float("inf"):
                raise AssertionError(f"op {op_id} of {addr} can never finish")
        return self.done[addr][op_id]

    # ------------------------------------------------------------ node actions

    def _drain(self) -> None:
        for addr, node in self.nodes.items():
            while (a := node.next_action()) is not None:
                if isinstance(a, SendRpc):
                    self._rpcs[(addr, a.rpc_id)] = a.to.addr
                    self._at(self.now + self.latency, self._serve_rpc(addr, a))
                elif isinstance(a, CancelRpc):
                    self._rpcs.pop((addr, a.rpc_id), None)
                else:
                    self.done[addr][a.op_id] = a
        for i, h in enumerate(self.pulls):
            while (pa := h.pull.next_action()) is not None:
                if isinstance(pa, RequestHeader | RequestChunk):
                    index = pa.index if isinstance(pa, RequestChunk) else -1
                    h.requests.append((pa.peer, index))
                    self._streams.add((i, pa.peer, index))
                    self._at(self.now + self.latency, self._serve_pull(i, pa.peer, index, pa.data))
                elif isinstance(pa, CancelRequest):
                    self._streams.discard((i, pa.peer, pa.index))
                else:
                    h.outcome = pa

    def _feed(self, data: bytes) -> Message:
        """Parse ``data`` as a peer's stream, fed in random splits."""
        reader, pos = MessageReader(), 0
        while pos < len(data):
            step = self.rng.randint(1, max(1, len(data) // 3))
            reader.receive_data(data[pos : pos + step])
            pos += step
        msg = reader.next_message()
        reader.end_of_stream()
        assert msg is not None
        return msg

    def _serve_rpc(self, client: str, a: SendRpc) -> Callable[[], None]:
        def serve() -> None:
            server = a.to.addr
            if (client, a.rpc_id) not in self._rpcs or server in self.offline:
                return
            node = self.nodes.get(server)
            if node is None:
                return
            try:
                reply = encode(
                    node.handle_request(self._peer(client), self._feed(a.data), self.now)
                )
            except RemoteProtocolError as exc:
                self.resets.append((server, exc.code))
                self._at(self.now + self.latency, self._rpc_reset(client, a.rpc_id, exc.code))
                return
            self._at(self.now + self.latency, self._rpc_reply(client, a.rpc_id, reply))

        return serve

    def _rpc_reply(self, client: str, rpc_id: int, data: bytes) -> Callable[[], None]:
        def deliver() -> None:
            if self._rpcs.pop((client, rpc_id), None) is None or client in self.offline:
                return
            node = self.nodes[client]
            try:
                node.rpc_response(rpc_id, self._feed(data), self.now)
            except RemoteProtocolError as exc:
                self.resets.append((client, exc.code))
                node.rpc_failed(rpc_id, exc.code, self.now)

        return deliver

    def _rpc_reset(self, client: str, rpc_id: int, code: WireCode) -> Callable[[], None]:
        def deliver() -> None:
            if self._rpcs.pop((client, rpc_id), None) is not None and client not in self.offline:
                self.nodes[client].rpc_failed(rpc_id, code, self.now)

        return deliver

    def _peer(self, addr: str) -> Contact:
        """The authenticated contact of ``addr`` (what the TLS handshake proves)."""
        return self.nodes[addr].contact

    # ------------------------------------------------------------ chunk pulls

    def start_pull(self, client: str, pull: ChunkPull) -> PullHandle:
        """Run ``pull`` on behalf of node ``client``; providers are addresses."""
        h = PullHandle(client, pull)
        self.pulls.append(h)
        return h

    def _serve_pull(self, i: int, server: str, index: int, data: bytes) -> Callable[[], None]:
        def serve() -> None:
            h = self.pulls[i]
            if (i, server, index) not in self._streams:
                return
            if server in self.offline or server not in self.nodes:
                self._streams.discard((i, server, index))
                h.pull.peer_disconnected(server, self.now)
                return
            try:
                req = self._feed(data)
                reply = encode(
                    self.nodes[server].handle_request(self._peer(h.client), req, self.now)
                )
            except RemoteProtocolError as exc:
                self.resets.append((server, exc.code))
                self._at(self.now + self.latency, self._pull_reset(i, server, index, exc.code))
                return
            pieces = [
                reply[p : p + self.piece_bytes] for p in range(0, len(reply), self.piece_bytes)
            ]
            t = self.now + self.latency
            for n, piece in enumerate(pieces):
                last = n == len(pieces) - 1
                self._at(t + n * self.piece_gap, self._pull_piece(i, server, index, piece, last))

        return serve

    def _pull_piece(
        self, i: int, server: str, index: int, piece: bytes, last: bool
    ) -> Callable[[], None]:
        def deliver() -> None:
            if (i, server, index) not in self._streams:
                return
            pull = self.pulls[i].pull
            pull.receive_data(server, index, piece, self.now)
            if last:
                self._streams.discard((i, server, index))
                pull.stream_ended(server, index, self.now)

        return deliver

    def _pull_reset(self, i: int, server: str, index: int, code: WireCode) -> Callable[[], None]:
        def deliver() -> None:
            if (i, server, index) in self._streams:
                self._streams.discard((i, server, index))
                self.pulls[i].pull.stream_reset(server, index, code, self.now)

        return deliver
