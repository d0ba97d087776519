"""The policy-free core of a chunk pull: verify, insert, blame, complete (sans-IO).

:class:`PullCore` is the passive reassembler of one block: it frames the
response streams it is fed (one :class:`~zapstack.dht.wire.MessageReader` per
request ``(peer, index)``), accepts a header (a trusted one at construction, or
a provider's HEADER answer), checks every chunk before insertion
(:mod:`zapstack.dht.reassembly`), records blame (definitive for malformed bytes
and wrong echoes, provisional for commitment failures under a provider's
header) and completes when ``sha256(block)`` equals the block id.  Steps 1, 3,
4 and 5 of :mod:`zapstack.dht.chunks`' theory of operation live here; *who* is
asked and the stall policy (steps 2 and 6) are :class:`~zapstack.dht.chunks.ChunkPull`'s,
through the :meth:`PullCore._schedule` hook, a no-op here.

Events in: ``receive_data``, ``stream_ended``, ``stream_reset``,
``peer_disconnected``, ``deliver``, ``handle_timer``; actions out:
``next_action``.  ``now`` is always an argument; every unwind call is
idempotent; single-threaded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from zapstack.dht.blocks import BlockLayout
from zapstack.dht.chunk_actions import HEADER_REQ, Action, CancelRequest, PullComplete, Stalled
from zapstack.dht.messages import ChunkMsg, HeaderMsg, Message
from zapstack.dht.reassembly import Reassembly, chunk_verifies
from zapstack.dht.wire import MessageReader
from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode
from zapstack.zap.merkle import chunk_count

__all__ = ["LayoutFn", "PullCore"]

LayoutFn = Callable[[bytes], BlockLayout]
"""Turns a header (the block's prefix) into its layout; RemoteProtocolError if malformed."""

_Key = tuple[bytes, int]  # (chunk_root, payload_len): what a chunk verdict depends on


class PullCore:
    """The passive reassembler of one block (see the module docstring)."""

    def __init__(
        self,
        block_id: bytes,
        *,
        layout: LayoutFn,
        now: float,
        header: bytes | None = None,
        trailer: bytes = b"",
        max_block_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        if len(block_id) != 32:
            raise LocalProtocolError("block id must be 32 bytes")
        self.block_id = block_id
        self._layout_fn = layout
        self.max_block_bytes = max_block_bytes
        self._actions: deque[Action] = deque()
        self._out: dict[tuple[str, int], float] = {}  # (peer, index) -> deadline
        self._index_peer: dict[int, str] = {}  # chunk index -> peer asked
        self._readers: dict[tuple[str, int], MessageReader] = {}
        self._liars: set[str] = set()  # definitive blame
        self._fails: dict[_Key, set[str]] = {}  # commitment failures per layout
        self._gone: set[str] = set()  # disconnected or NOT_FOUND
        self._excluded: dict[int, set[str]] = {}  # chunk index -> peers not to ask again
        self._retry_rounds = 0  # exclusion clear-outs under this header (the stall policy's)
        self._stalled = False
        self.header: bytes | None = None
        self.header_from: str | None = None
        self.layout: BlockLayout | None = None
        self._reassembly = Reassembly()
        self.result: bytes | None = None
        self.duplicates = 0
        """Valid chunks received for an index already held."""
        self.dropped_bytes = 0
        """Partial response bytes discarded on disconnect / reset / cancel."""
        if header is not None:
            self._accept_header(None, header, trailer, now)

    # ------------------------------------------------------------ public state

    @property
    def done(self) -> bool:
        """True once the block is complete and verified."""
        return self.result is not None

    @property
    def missing(self) -> tuple[int, ...]:
        """Chunk indices not yet verified (all of them before a header)."""
        if self.layout is None:
            return ()
        return tuple(i for i in range(self._n) if i not in self._have)

    @property
    def blamed(self) -> frozenset[str]:
        """Definitive blames, plus (once complete) commitment failures under the true root."""
        out = set(self._liars)
        if self.layout is not None and (self.header_from is None or self.done):
            out |= self._fails.get(self._key, set())
        return frozenset(out)

    @property
    def suspects(self) -> frozenset[str]:
        """Peers avoided under the current, unconfirmed header (provisional blame)."""
        return frozenset(self._fails.get(self._key, set())) if self.layout else frozenset()

    def in_flight(self, peer: str) -> tuple[int, ...]:
        """Indices (HEADER_REQ for the header) requested of ``peer`` and not answered."""
        return tuple(sorted(i for p, i in self._out if p == peer))

    @property
    def have(self) -> frozenset[int]:
        """Chunk indices verified and inserted under the current layout."""
        return frozenset(self._have)

    def partial_bytes(self, peer: str) -> int:
        """Bytes buffered from ``peer`` for responses not yet complete."""
        return sum(r.buffered for (p, _), r in self._readers.items() if p == peer)

    def next_action(self) -> Action | None:
        """The oldest pending action, or None."""
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        """The earliest request deadline (for the adapter's timer)."""
        return min(self._out.values(), default=None)

    # ------------------------------------------------------------ events in

    def receive_data(self, peer: str, index: int, data: bytes, now: float) -> None:
        """Bytes of the response stream of request ``(peer, index)``."""
        if self.done or peer in self._gone:
            return
        reader = self._readers.setdefault((peer, index), MessageReader())
        try:
            reader.receive_data(data)
            msg = reader.next_message()
        except RemoteProtocolError as exc:
            self._drop_stream(peer, index)
            self._liar(peer, exc.code, now)
            return
        if msg is not None:
            self._on_message(peer, index, msg, now)

    def stream_ended(self, peer: str, index: int, now: float) -> None:
        """The provider finished its side of stream ``(peer, index)``."""
        reader = self._readers.pop((peer, index), None)
        if reader is None and (peer, index) in self._out:
            reader = MessageReader()  # finished without sending a byte
        if reader is None or self.done:
            return
        try:
            reader.end_of_stream()
        except RemoteProtocolError as exc:
            self.dropped_bytes += reader.buffered
            self._clear_request(peer, index)
            self._liar(peer, exc.code, now)

    def stream_reset(self, peer: str, index: int, code: WireCode, now: float) -> None:
        """The provider reset stream ``(peer, index)`` (e.g. NOT_FOUND, RATE_LIMITED)."""
        self._drop_stream(peer, index)
        if not self._clear_request(peer, index):
            return
        if code is WireCode.NOT_FOUND:
            self._gone.add(peer)
        else:
            self._excluded.setdefault(index, set()).add(peer)
        self._schedule(now)

    def peer_disconnected(self, peer: str, now: float) -> None:
        """The connection to ``peer`` is gone: drop its partial data, re-request elsewhere."""
        self._gone.add(peer)
        for key in [k for k in self._readers if k[0] == peer]:
            self._drop_stream(*key)
        for key in [k for k in self._out if k[0] == peer]:
            self._clear_request(*key)
        self._schedule(now)

    def handle_timer(self, now: float) -> None:
        """Cancel requests past their deadline; re-issue them elsewhere."""
        for (peer, index), deadline in sorted(self._out.items(), key=lambda kv: kv[1]):
            if deadline <= now:
                self._drop_stream(peer, index)
                self._clear_request(peer, index)
                self._excluded.setdefault(index, set()).add(peer)
                self._actions.append(CancelRequest(peer, index, WireCode.TIMEOUT))
        self._schedule(now)

    def deliver(self, peer: str, msg: Message, now: float) -> None:
        """An already-decoded HEADER or CHUNK message from ``peer`` (solicited or not)."""
        if peer in self._gone:
            return
        index = msg.index if isinstance(msg, ChunkMsg) else HEADER_REQ
        self._on_message(peer, index, msg, now)

    # ------------------------------------------------------------ internals

    @property
    def _n(self) -> int:
        return chunk_count(self.layout.payload_len) if self.layout else 0

    @property
    def _have(self) -> set[int]:
        return self._reassembly.have

    @property
    def _key(self) -> _Key:
        assert self.layout is not None
        return (self.layout.chunk_root, self.layout.payload_len)

    def _avoid(self, peer: str) -> bool:
        if peer in self._liars or peer in self._gone:
            return True
        return self.layout is not None and peer in self._fails.get(self._key, ())

    def _drop_stream(self, peer: str, index: int) -> None:
        reader = self._readers.pop((peer, index), None)
        if reader is not None:
            self.dropped_bytes += reader.buffered

    def _clear_request(self, peer: str, index: int) -> bool:
        if self._out.pop((peer, index), None) is None:
            return False
        if self._index_peer.get(index) == peer:
            del self._index_peer[index]
        return True

    def _cancel_all(self, peer: str, code: WireCode) -> None:
        for p, i in [k for k in self._out if k[0] == peer]:
            self._drop_stream(p, i)
            self._clear_request(p, i)
            self._actions.append(CancelRequest(p, i, code))

    def _liar(self, peer: str, code: WireCode, now: float) -> None:
        self._liars.add(peer)
        self._cancel_all(peer, code)
        self._schedule(now)

    def _on_message(self, peer: str, index: int, msg: Message, now: float) -> None:
        if self.done:
            return
        self._readers.pop((peer, index), None)
        self._clear_request(peer, index)
        if isinstance(msg, HeaderMsg) and index == HEADER_REQ:
            if msg.block_id != self.block_id:
                self._liar(peer, WireCode.BAD_BLOCK, now)
            elif self.layout is None:
                self._accept_header(peer, msg.header, msg.trailer, now)
            self._schedule(now)
        elif isinstance(msg, ChunkMsg) and msg.index == index:
            self._on_chunk(peer, msg, now)
        else:
            self._liar(peer, WireCode.STREAM_PROTOCOL_VIOLATION, now)

    def _accept_header(self, peer: str | None, header: bytes, trailer: bytes, now: float) -> None:
        try:
            layout = self._layout_fn(header)
        except RemoteProtocolError as exc:
            if peer is None:
                raise LocalProtocolError(f"trusted header is malformed: {exc}") from exc
            self._liar(peer, exc.code, now)
            return
        size = layout.header_len + layout.payload_len + layout.trailer_len
        if (
            layout.header_len != len(header)
            or layout.trailer_len != len(trailer)
            or size > self.max_block_bytes
        ):
            if peer is None:
                raise LocalProtocolError("trusted header has an impossible layout")
            self._liar(peer, WireCode.BAD_LENGTH, now)
            return
        self._reassembly.adopt(header, layout, trailer)
        self.header, self.header_from, self.layout = header, peer, layout
        self._excluded.clear()
        self._retry_rounds = 0
        if self._n == 0 or len(self._have) == self._n:
            self._finish(now)

    def _drop_header(self) -> None:
        for index in [i for i in self._index_peer]:
            peer = self._index_peer[index]
            self._drop_stream(peer, index)
            self._clear_request(peer, index)
            self._actions.append(CancelRequest(peer, index, WireCode.CANCELLED))
        self.header = self.header_from = self.layout = None

    def _on_chunk(self, peer: str, msg: ChunkMsg, now: float) -> None:
        if msg.block_id != self.block_id:
            self._liar(peer, WireCode.BAD_CHUNK, now)
            return
        if self.layout is None or self._reassembly.buf is None:
            return  # cannot judge a chunk without a header: discard, no blame
        if not chunk_verifies(self.layout, msg):
            self._fails.setdefault(self._key, set()).add(peer)
            self._cancel_all(peer, WireCode.BAD_CHUNK)
            self._schedule(now)
            return
        if not self._reassembly.insert(self.layout, msg):
            self.duplicates += 1
        elif len(self._have) == self._n:
            self._finish(now)
            return
        self._schedule(now)

    def _finish(self, now: float) -> None:
        self.result = self._reassembly.block(self.block_id)
        if self.result is not None:
            for peer, index in list(self._out):
                self._drop_stream(peer, index)
                self._clear_request(peer, index)
                self._actions.append(CancelRequest(peer, index, WireCode.CANCELLED))
            self._actions.append(PullComplete(self.block_id, self.result))
            return
        if self.header_from is None:
            self._actions.append(Stalled((), "trusted header does not hash to the block id"))
            self._stalled = True
            return
        liar = self.header_from
        self._drop_header()
        self._liar(liar, WireCode.BAD_BLOCK, now)

    def _schedule(self, now: float) -> None:
        """Hook: ask providers for what is missing.  The passive core asks nothing."""
