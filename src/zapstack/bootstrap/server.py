"""The serving side of the bootstrap pipeline: answers from a ZapDB and a block store.

Contract
--------
:class:`BootstrapServer` is sans-IO.  It holds

* the finalized blocks it can serve (height -> block bytes, cert bytes), added
  with :meth:`add_finalized` *after* the node committed that block to its ZapDB;
  by default a dict, or any mutable mapping the node passes (a node serves
  straight from its on-disk block store; heights it lacks -- below a state
  sync target -- simply end a reply early);
* pinned read views (O(1) MVCC snapshots) of the last ``keep_roots`` finalized
  state roots, so a bootstrapping peer can keep pulling chunks of the root it
  chose while this node moves on -- and, past those, of up to ``KEEP_PULLED`` older
  roots that served a STATE_CHUNK request since the previous pin, each for at most
  ``hold_pins`` pins (default ``HOLD_PINS``) after it fell out (a sync slower than
  ``keep_roots`` blocks keeps its root; a peer cannot hold old snapshots, and so LMDB's
  old pages, for long);
* the subscriptions peers asked for in their HEADER_RANGE requests.

Requests arrive through per-stream handlers from :meth:`handler` (the
transport's :class:`~zapstack.transport.handler.StreamHandler` interface): the
request bytes are collected until FIN and answered with one ``Reply`` (the
whole reply, then FIN), or refused with ``Reject(code)`` -- ``NOT_FOUND`` for a
root no longer pinned, the parse error's code for malformed bytes.  A STATE_CHUNK reply
costs at most about ``MAX_STATE_REPLY`` bytes of reading whatever a peer asks: a chunk too
large for one record (over 2**24 body bytes: a depth too small for this state), or chunks
that pass the reply's bound together, raise a ``LocalProtocolError`` with code
``INTERNAL`` at the chunk that passes, which the transport sends as the reset.

Live data goes out as :class:`Push` commands, one queue per peer
(:meth:`next_push`): :meth:`add_finalized` pushes the block and its cert on a
fresh BLOCK_PUSH stream, :meth:`publish_txs` a batch on a fresh MEMPOOL_GOSSIP
stream, :meth:`publish_vote` one record on the peer's long-lived VOTE stream
(channel :data:`VOTE_CHANNEL`).  The link that owns the peer's connection
executes them.  :meth:`peer_gone` (idempotent) forgets a peer.

Single-threaded, except that :meth:`BootstrapServer.answer_state` and
:meth:`BootstrapServer.range_reply` may run on another thread (a node's serving worker):
the first takes its own reference to the view it reads, under a lock :meth:`pin` and
:meth:`close` hold to change the views; the second reads ``head`` and the block mapping
(a node's: immutable files, replaced only by atomic renames), while
:meth:`range_request` records a request's subscriptions on the loop.  Byte formats in
``docs/formats/bootstrap.md``.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass

from zapstack.bootstrap.wire import (
    CERTS_ONLY,
    LATEST,
    MAX_CHUNK_RECORD,
    MAX_RANGE_REPLY,
    MAX_STATE_REPLY,
    SUB_BLOCKS,
    SUB_MEMPOOL,
    SUB_VOTES,
    RangeRequest,
    decode_range_request,
    decode_state_request,
    encode_chunk,
    encode_range_record,
    encode_vote,
)
from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode
from zapstack.transport.events import End, HandlerAction, Reject, Reply
from zapstack.transport.handler import NO_ACTIONS, StreamHandler
from zapstack.transport.streams import StreamType
from zapstack.zap.frames import parse_block
from zapstack.zapdb.proofs import ChunkTooLarge
from zapstack.zapdb.store import ZapDB
from zapstack.zapdb.view import ReadView

__all__ = ["VOTE_CHANNEL", "BootstrapServer", "Push", "RequestHandler"]

VOTE_CHANNEL = 0
"""Channel id of a peer's long-lived VOTE stream (other pushes get fresh ids)."""

MAX_REQUEST = 64
"""Request bytes accepted on one stream before it is refused (TRAILING_DATA)."""
KEEP_PULLED = 4
"""Roots kept pinned beyond ``keep_roots`` while peers pull their chunks."""
HOLD_PINS = 256
"""Pins (finalized blocks) a root is kept at most after it fell out of ``keep_roots``, by
default (a node's ``state_hold_blocks`` option)."""


@dataclass(frozen=True, slots=True)
class Push:
    """Write ``data`` on the unidirectional stream ``channel`` to ``peer``."""

    peer: bytes
    """Subscriber."""
    stream_type: StreamType
    """BLOCK_PUSH, MEMPOOL_GOSSIP or VOTE."""
    channel: int
    """Stream identity within the peer: open one on first use; forget it after ``fin``."""
    data: bytes
    """Bytes to write."""
    fin: bool
    """Finish the stream after ``data``."""


class RequestHandler:
    """Collects one request until FIN (at most ``MAX_REQUEST`` bytes), then answers it."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self._answer = answer
        self._buf = bytearray()

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        self._buf += data
        if len(self._buf) > MAX_REQUEST:
            return (Reject(WireCode.TRAILING_DATA),)
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        try:
            return (Reply(self._answer(bytes(self._buf)), fin=True),)
        except RemoteProtocolError as exc:
            return (Reject(exc.code),)

    def on_terminated(self, end: End, code: int | None) -> None:
        self._buf.clear()


class BootstrapServer:
    """Serves state chunks, block ranges and live pushes (see the module docstring)."""

    def __init__(
        self,
        db: ZapDB,
        *,
        keep_roots: int = 4,
        blocks: MutableMapping[int, tuple[bytes, bytes]] | None = None,
        head: int = 0,
        hold_pins: int = HOLD_PINS,
    ) -> None:
        self.db = db
        self.keep_roots = keep_roots
        self.hold_pins = hold_pins
        """Pins a pulled root is kept at most after it fell out of ``keep_roots``."""
        self.blocks: MutableMapping[int, tuple[bytes, bytes]] = {} if blocks is None else blocks
        """Finalized height -> (block bytes, cert bytes)."""
        self.head = head
        """Highest finalized height served (0: none); heights come in order above it."""
        self._views: OrderedDict[bytes, ReadView] = OrderedDict()
        self._views_lock = threading.Lock()
        """Held to change ``_views`` and to take a reply's own reference to one of them: a
        reply built on another thread (node/stateserve.py) outlives its view's replacement."""
        self._pulled: set[bytes] = set()
        """Roots that served a STATE_CHUNK request since the last pin."""
        self._fell: dict[bytes, int] = {}
        """Roots kept past ``keep_roots``: the pin count when they fell out."""
        self._pins = 0
        self._subs: dict[bytes, int] = {}
        self._pushes: dict[bytes, deque[Push]] = {}
        self._channels = itertools.count(VOTE_CHANNEL + 1)
        self.chunks_served = 0
        """State chunks answered so far."""
        self.bytes_served = 0
        """Reply bytes produced so far (both request types)."""

    # ------------------------------------------------------------ state

    def pin(self) -> bytes:
        """Pin the committed state (an O(1) read view) for serving; return its root."""
        view = self.db.read()
        root = view.root()
        with self._views_lock:
            old = self._views.pop(root, None)
            if old is not None:
                old.close()
            self._views[root] = view
            self._fell.pop(root, None)  # the newest again (a block that left the state as is)
            self._pins += 1
            surplus = list(self._views)[: max(0, len(self._views) - self.keep_roots)]
            kept = 0
            for old_root in reversed(surplus):  # the newest of them first
                fell = self._fell.setdefault(old_root, self._pins)
                if (
                    old_root in self._pulled
                    and self._pins - fell < self.hold_pins
                    and kept < KEEP_PULLED
                ):
                    kept += 1  # a peer is syncing it: keep it a while
                    continue
                self._views.pop(old_root).close()
                self._fell.pop(old_root, None)
            self._pulled.clear()
        return root

    @property
    def roots(self) -> tuple[bytes, ...]:
        """State roots currently served, oldest first."""
        return tuple(self._views)

    def add_finalized(self, block: bytes, cert: bytes) -> None:
        """Serve a finalized block; push it to subscribers.

        Heights must come in order.  When the committed state is this block's
        post-state (the usual case: call it right after the commit) that state
        is pinned for chunk serving.
        """
        view = parse_block(block, verify_signatures=False)
        height = view.height
        if self.head and height <= self.head:
            return
        if height != self.head + 1 and self.head:
            raise LocalProtocolError(f"finalized height {height} does not follow {self.head}")
        self.blocks[height] = (block, cert)
        self.head = max(self.head, height)
        if self.db.root() == view.state_root:
            self.pin()
        for peer, flags in self._subs.items():
            if flags & SUB_BLOCKS:
                self._push(peer, StreamType.BLOCK_PUSH, next(self._channels), block + cert, True)

    def publish_txs(self, frames: Sequence[bytes]) -> None:
        """Gossip newly admitted tx frames as one MEMPOOL_GOSSIP batch to subscribers."""
        data = b"".join(frames)
        for peer, flags in self._subs.items():
            if flags & SUB_MEMPOOL and data:
                self._push(peer, StreamType.MEMPOOL_GOSSIP, next(self._channels), data, True)

    def publish_vote(self, record: bytes) -> None:
        """Append one vote record to every subscriber's long-lived VOTE stream."""
        data = encode_vote(record)
        for peer, flags in self._subs.items():
            if flags & SUB_VOTES:
                self._push(peer, StreamType.VOTE, VOTE_CHANNEL, data, False)

    def peer_gone(self, peer: bytes) -> None:
        """Forget ``peer``'s subscriptions and queued pushes.  Idempotent."""
        self._subs.pop(peer, None)
        self._pushes.pop(peer, None)

    def close(self) -> None:
        """Release every pinned view.  Idempotent."""
        with self._views_lock:
            while self._views:
                self._views.popitem()[1].close()
            self._fell.clear()

    def pending(self) -> list[bytes]:
        """Peers with pushes queued."""
        return [peer for peer, queue in self._pushes.items() if queue]

    def next_push(self, peer: bytes) -> Push | None:
        """The next push for ``peer``'s connection, or None."""
        queue = self._pushes.get(peer)
        return queue.popleft() if queue else None

    def _push(self, peer: bytes, st: StreamType, channel: int, data: bytes, fin: bool) -> None:
        self._pushes.setdefault(peer, deque()).append(Push(peer, st, channel, data, fin))

    # ------------------------------------------------------------ requests

    def handler(self, peer: bytes, stream_type: StreamType) -> StreamHandler:
        """The handler for one inbound STATE_CHUNK or HEADER_RANGE stream from ``peer``."""
        answers: dict[StreamType, Callable[[bytes], bytes]] = {
            StreamType.STATE_CHUNK: self.answer_state,
            StreamType.HEADER_RANGE: lambda data: self.answer_range(peer, data),
        }
        return RequestHandler(answers[stream_type])

    def answer_state(self, data: bytes) -> bytes:
        """The STATE_CHUNK reply to request ``data`` (RemoteProtocolError to refuse).

        The work is bounded whatever a peer asks: the records' bodies may add up to
        ``MAX_STATE_REPLY`` bytes, each chunk is built with the budget left (at most
        ``MAX_CHUNK_RECORD``), and building stops at the chunk that passes it, having read
        about that many bytes of it (``ReadView.chunk``'s limit).  Such a request is refused
        with LocalProtocolError code INTERNAL: a single chunk over the format's bound means
        this node cannot serve that depth (ask a greater one); several chunks over the
        reply's bound, ask fewer at a time.  Nothing is sent for a refused request."""
        req = decode_state_request(data)
        with self._views_lock:
            pinned = self._views.get(req.root)
            view = None if pinned is None else pinned.retain()  # the reply's own reference
        if view is None:
            raise RemoteProtocolError("state root not served", code=WireCode.NOT_FOUND)
        records = []
        left = MAX_STATE_REPLY
        with view:
            for i in range(req.start, req.start + req.count):
                limit = min(MAX_CHUNK_RECORD, left)
                try:
                    record = encode_chunk(view.chunk(req.depth, i, limit))
                except ChunkTooLarge:
                    if limit == MAX_CHUNK_RECORD:
                        why = f"over the {MAX_CHUNK_RECORD} a record may hold: ask a greater depth"
                    else:
                        why = f"past the {MAX_STATE_REPLY} one reply may hold: ask fewer chunks"
                    raise LocalProtocolError(
                        f"state chunk {i} of depth {req.depth} is {why}", code=WireCode.INTERNAL
                    ) from None
                left -= len(record) - 4
                records.append(record)
        out = b"".join(records)
        self._pulled.add(req.root)
        self.chunks_served += req.count
        self.bytes_served += len(out)
        return out

    def request_entries(self, data: bytes) -> int:
        """About how many entries answering STATE_CHUNK request ``data`` reads: the state's
        entries x count / 2**depth (key hashes spread evenly); 0 for bytes that do not
        parse or a root not served (refused at once)."""
        try:
            req = decode_state_request(data)
        except RemoteProtocolError:
            return 0
        view = self._views.get(req.root)
        return 0 if view is None else view.entries() * req.count >> req.depth

    def answer_range(self, peer: bytes, data: bytes) -> bytes:
        """The HEADER_RANGE reply to ``peer``'s request ``data``: :meth:`range_request`,
        then :meth:`range_reply`."""
        return self.range_reply(self.range_request(peer, data))

    def range_request(self, peer: bytes, data: bytes) -> RangeRequest:
        """Parse ``peer``'s HEADER_RANGE request ``data`` and record the pushes it asks for
        (RemoteProtocolError to refuse).  On the loop: subscriptions are loop state."""
        req = decode_range_request(data)
        subs = req.flags & ~CERTS_ONLY
        if subs:
            self._subs[peer] = self._subs.get(peer, 0) | subs
        return req

    def range_reply(self, req: RangeRequest) -> bytes:
        """The records of ``req`` (any thread: it reads ``head`` and the block files).  It
        ends before a record that would take its records past ``MAX_RANGE_REPLY`` bytes (the
        first is always sent), as it ends before a height it does not hold."""
        first = max(1, self.head - req.count + 1 if req.start == LATEST else req.start)
        last = min(self.head, first + req.count - 1)
        parts = [self.head.to_bytes(8, "little")]
        size = 0
        for h in range(first, last + 1):
            held = self.blocks.get(h)  # one read (a node's blocks are files, checksummed)
            if held is None:
                break  # below a state-sync target: this server never held it
            block, cert = held
            record = encode_range_record(b"" if req.flags & CERTS_ONLY else block, cert)
            size += len(record)
            if size > MAX_RANGE_REPLY and len(parts) > 1:
                break  # the reply's bound: the client asks the rest again
            parts.append(record)
        out = b"".join(parts)
        self.bytes_served += len(out)
        return out
