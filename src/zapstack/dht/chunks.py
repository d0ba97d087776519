"""Light-client chunked parallel pull of one block (sans-IO), and its server side.

Theory of operation
-------------------
A block is ``header || payload || trailer`` (a ZAP block frame's trailer is
its signature; synthetic blocks have none).  The header (a small prefix)
commits to the payload through ``chunk_root``: the Merkle root over ``leaf_hash(chunk_i)`` of
the payload's 64 KiB chunks (:mod:`zapstack.zap.merkle`).  The block id is
``sha256(block)``.  ``docs/formats/chunks.md`` is the normative description.

:class:`ChunkPull` fetches one block from a list of providers:

1. **Header.**  Unless the caller already holds a trusted header (e.g. from a
   certified header chain), GET_HEADER goes to the first untried provider; the
   HEADER answer carries the prefix and the trailer.  A ``layout`` function
   turns the prefix into a :class:`BlockLayout`.
2. **Chunks.**  Every missing chunk without a request in flight is asked of
   the usable provider with the fewest requests in flight (ties: provider
   order), at most ``max_in_flight`` per provider.  Each arriving chunk is
   checked *before* insertion: block id echo, index, exact length, inclusion
   proof against ``chunk_root``.  A valid chunk is written at
   ``header_len + index * CHUNK_SIZE`` whoever sent it and in any order; a
   second copy is counted as a duplicate and dropped.
3. **Blame.**  Malformed bytes or a wrong echo are a *definitive* blame.  A
   chunk that fails the commitment is blamed against the layout it failed
   under: definitive if the header is trusted or confirmed, *provisional*
   while the header came from a provider and the block is not complete.
   A blamed peer's in-flight requests are cancelled (``BAD_CHUNK``) and
   re-issued elsewhere; it gets no new ones.
4. **Disconnect / reset / timeout.**  A disconnected provider's partial
   response bytes are dropped and its in-flight chunks re-requested elsewhere;
   a reset or timed-out request excludes that provider for that chunk.
5. **Completion.**  When every chunk is in, ``sha256(buffer)`` must equal the
   block id.  Yes: :class:`PullComplete`, provisional blames become final.  No,
   with a trusted header: :class:`Stalled` (the caller's header is wrong).  No,
   with a provider's header: that provider lied (the chunks all matched its
   root), it is blamed and a header is fetched from another provider.
6. **Stall.**  With nothing in flight and chunks missing: if the provider's
   header has provisional blames against it, it is *suspected* (not blamed)
   and a header is fetched elsewhere; otherwise per-chunk exclusions are
   cleared up to twice, then :class:`Stalled` is emitted until
   :meth:`ChunkPull.add_providers` brings new ones.

With ``schedule=False`` the pull is a *passive reassembler*: it issues no
requests and runs no stall policy (steps 2 and 6), only verification,
insertion, blame and completion -- the policy-free core the ``dht_refetch``
vectors pin down.

Events in: :meth:`receive_data`, :meth:`stream_ended`, :meth:`stream_reset`,
:meth:`peer_disconnected`, :meth:`deliver` (already-decoded messages),
:meth:`handle_timer`.  Actions out: :meth:`next_action`.  Time is always a
``now`` argument.  Every unwind call is idempotent.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zapstack.dht.blocks import BlockLayout
from zapstack.dht.messages import ChunkMsg, GetChunk, GetHeader, HeaderMsg, Message
from zapstack.dht.wire import MessageReader, encode
from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode
from zapstack.zap.merkle import CHUNK_SIZE, chunk_count, leaf_hash, verify_inclusion

__all__ = [
    "HEADER_REQ",
    "Action",
    "CancelRequest",
    "ChunkPull",
    "PullComplete",
    "RequestChunk",
    "RequestHeader",
    "Stalled",
]

HEADER_REQ = -1
"""The request index that denotes the GET_HEADER request of a provider."""

LayoutFn = Callable[[bytes], BlockLayout]


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """Open a DHT stream to ``peer`` and write ``data`` (a GET_HEADER)."""

    peer: str
    """Provider to ask."""
    data: bytes
    """Encoded GET_HEADER message."""


@dataclass(frozen=True, slots=True)
class RequestChunk:
    """Open a DHT stream to ``peer`` and write ``data`` (a GET_CHUNK)."""

    peer: str
    """Provider to ask."""
    index: int
    """Chunk index requested (the stream is identified by ``(peer, index)``)."""
    data: bytes
    """Encoded GET_CHUNK message."""


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Reset our stream ``(peer, index)`` with ``code`` (index -1: the header)."""

    peer: str
    """Provider whose request is abandoned."""
    index: int
    """Chunk index, or HEADER_REQ."""
    code: WireCode
    """RESET_STREAM / STOP_SENDING application code."""


@dataclass(frozen=True, slots=True)
class PullComplete:
    """The block is reassembled and ``sha256(block) == block_id``."""

    block_id: bytes
    """The requested id."""
    block: bytes
    """The reassembled block bytes."""


@dataclass(frozen=True, slots=True)
class Stalled:
    """No progress is possible with the current providers."""

    missing: tuple[int, ...]
    """Chunk indices still missing (empty: the header itself is missing)."""
    reason: str
    """Human-readable cause."""


Action = RequestHeader | RequestChunk | CancelRequest | PullComplete | Stalled

_Key = tuple[bytes, int]  # (chunk_root, payload_len): what a chunk verdict depends on


class ChunkPull:
    """Pull one block by id from ``providers`` (see the module docstring)."""

    def __init__(
        self,
        block_id: bytes,
        providers: Sequence[str],
        *,
        layout: LayoutFn,
        now: float,
        header: bytes | None = None,
        trailer: bytes = b"",
        max_in_flight: int = 4,
        request_timeout: float = 5.0,
        max_block_bytes: int = 256 * 1024 * 1024,
        schedule: bool = True,
    ) -> None:
        if len(block_id) != 32:
            raise LocalProtocolError("block id must be 32 bytes")
        self.block_id = block_id
        self._active = schedule
        self._layout_fn = layout
        self.max_in_flight = max_in_flight
        self.request_timeout = request_timeout
        self.max_block_bytes = max_block_bytes
        self.providers: list[str] = []
        self._actions: deque[Action] = deque()
        self._out: dict[tuple[str, int], float] = {}  # (peer, index) -> deadline
        self._index_peer: dict[int, str] = {}  # chunk index -> peer asked
        self._readers: dict[tuple[str, int], MessageReader] = {}
        self._liars: set[str] = set()  # definitive blame
        self._fails: dict[_Key, set[str]] = {}  # commitment failures per layout
        self._gone: set[str] = set()  # disconnected or NOT_FOUND
        self._excluded: dict[int, set[str]] = {}
        self._header_tried: set[str] = set()
        self._retry_rounds = 0
        self._stalled = False
        self.header: bytes | None = None
        self.header_from: str | None = None
        self.layout: BlockLayout | None = None
        self._buf: bytearray | None = None
        self._buf_key: _Key | None = None
        self._buf_hlen = 0
        self._have: set[int] = set()
        self.result: bytes | None = None
        self.duplicates = 0
        """Valid chunks received for an index already held."""
        self.dropped_bytes = 0
        """Partial response bytes discarded on disconnect / reset / cancel."""
        for p in providers:
            if p not in self.providers:
                self.providers.append(p)
        if header is not None:
            self._accept_header(None, header, trailer, now)
        self._schedule(now)

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

    def add_providers(self, peers: Sequence[str], now: float) -> None:
        """Append new providers (duplicates ignored) and reschedule."""
        for p in peers:
            if p not in self.providers:
                self.providers.append(p)
                self._stalled = False
        self._schedule(now)

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
        key = (layout.chunk_root, layout.payload_len)
        if self._buf is not None and self._buf_key == key:  # same commitment: keep chunks
            payload = self._buf[self._buf_hlen : self._buf_hlen + layout.payload_len]
            self._buf = bytearray(header) + payload + trailer
        else:
            self._buf = bytearray(header) + bytearray(layout.payload_len) + trailer
            self._have = set()
        self._buf_key, self._buf_hlen = key, layout.header_len
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
        if self.layout is None or self._buf is None:
            return  # cannot judge a chunk without a header: discard, no blame
        n, key = self._n, self._key
        expected = min(CHUNK_SIZE, self.layout.payload_len - msg.index * CHUNK_SIZE)
        ok = (
            msg.index < n
            and len(msg.data) == expected
            and verify_inclusion(leaf_hash(msg.data), msg.index, n, msg.proof, key[0])
        )
        if not ok:
            self._fails.setdefault(key, set()).add(peer)
            self._cancel_all(peer, WireCode.BAD_CHUNK)
            self._schedule(now)
            return
        if msg.index in self._have:
            self.duplicates += 1
        else:
            at = self.layout.header_len + msg.index * CHUNK_SIZE
            self._buf[at : at + len(msg.data)] = msg.data
            self._have.add(msg.index)
            if len(self._have) == n:
                self._finish(now)
                return
        self._schedule(now)

    def _finish(self, now: float) -> None:
        assert self._buf is not None
        if hashlib.sha256(self._buf).digest() == self.block_id:
            self.result = bytes(self._buf)
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

    def _usable(self) -> list[str]:
        return [p for p in self.providers if not self._avoid(p)]

    def _schedule(self, now: float) -> None:
        if self.done or not self._active:
            return
        usable = self._usable()
        if self.layout is None:
            if any(i == HEADER_REQ for _, i in self._out):
                return
            fresh = [p for p in usable if p not in self._header_tried]
            if fresh:
                self._header_tried.add(fresh[0])
                self._request(fresh[0], HEADER_REQ, now)
            else:
                self._stall((), "no provider left to ask for the header")
            return
        load = {p: 0 for p in usable}
        for p, _ in self._out:
            if p in load:
                load[p] += 1
        order = {p: i for i, p in enumerate(usable)}
        for index in range(self._n):
            if index in self._have or index in self._index_peer:
                continue
            excluded = self._excluded.get(index, set())
            cands = [p for p in usable if p not in excluded and load[p] < self.max_in_flight]
            if not cands:
                continue
            p = min(cands, key=lambda c: (load[c], order[c]))
            load[p] += 1
            self._request(p, index, now)
        if not self._out and self.missing:
            self._on_stall(now)

    def _on_stall(self, now: float) -> None:
        if self.header_from is not None and self._fails.get(self._key):
            self._drop_header()  # suspected, not blamed: try another provider's header
            self._schedule(now)
        elif self._excluded and self._retry_rounds < 2:
            self._retry_rounds += 1
            self._excluded.clear()
            self._schedule(now)
        else:
            self._stall(self.missing, "every provider is gone, blamed or excluded")

    def _stall(self, missing: tuple[int, ...], reason: str) -> None:
        if not self._stalled:
            self._stalled = True
            self._actions.append(Stalled(missing, reason))

    def _request(self, peer: str, index: int, now: float) -> None:
        self._stalled = False
        self._out[(peer, index)] = now + self.request_timeout
        if index == HEADER_REQ:
            self._actions.append(RequestHeader(peer, encode(GetHeader(self.block_id))))
        else:
            self._index_peer[index] = peer
            data = encode(GetChunk(self.block_id, index))
            self._actions.append(RequestChunk(peer, index, data))
