"""The bootstrapping side: five independent streams per peer, per-stream recovery.

Theory of operation
-------------------
:class:`BootstrapClient` is sans-IO: the caller feeds it peer and stream events
with ``now`` and executes the :data:`Command` s it emits (``next_command``);
reports come out of ``next_event``.  Against every peer it uses five streams
(LP-0202 §5):

* **HEADER_RANGE** (bi): the first request to each peer asks for the latest
  finalized block *and* subscribes to the three pushes below; later ones
  fetch missing heights.
* **STATE_CHUNK** (bi): a batch of consecutive verifiable state chunks of the
  target root (``docs/formats/bootstrap.md``).  At most one per peer.
* **BLOCK_PUSH**, **MEMPOOL_GOSSIP**, **VOTE** (uni, peer -> us): live blocks,
  admitted txs, vote records.

Phases: *head* -> *state* -> *follow*.  The first latest-block reply whose
block parses and whose certificate passes the injected check fixes the target
(height, block id, ``state_root``).  The ``2**depth`` chunks of that root are
split into batches handed to the least-loaded usable peer.  Every chunk is
checked with :func:`~zapstack.zapdb.proofs.verify_chunk` against the target
root *before* its entries are written into one ZapDB txn; a bad chunk blames
its peer (reset ``BAD_CHUNK``).  With every chunk in, the txn's root must equal
the target: it is committed with the verify pipeline's head metadata and the
node follows blocks above the target, applying them in height order through
the :class:`~zapstack.bootstrap.follow.Applier`.

Stall recovery is per stream.  A request stream's deadline is
``stall_timeout`` after it was opened or last delivered a whole record.  Past
it the stream alone is cancelled (:class:`CancelRequest` with ``TIMEOUT``), the
peer is excluded from that request kind, and whatever the stream still owed
is re-issued to a different peer.  The peer's other streams -- its pushes, its
vote subscription, its other requests -- are untouched.  A push stream that
stays open ``push_timeout`` without finishing is stopped (``TIMEOUT``); the
block it carried is fetched by HEADER_RANGE elsewhere when a gap shows.

Unwind: :meth:`peer_lost` and :meth:`close` are idempotent; a lost peer's
requests are re-issued, its partial buffers dropped.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from zapstack.bootstrap.events import (
    BlockApplied,
    CancelRequest,
    Command,
    Event,
    HeadSeen,
    OpenRequest,
    PeerBlamed,
    StateSynced,
    StopPush,
    StreamStalled,
    TargetChosen,
    TxGossiped,
    VoteReceived,
)
from zapstack.bootstrap.follow import Applier, BlockBuffer, CertCheck
from zapstack.bootstrap.readers import (
    BlockPushReader,
    ChunkReplyReader,
    RangeRecord,
    RangeReplyReader,
    TxGossipReader,
    VoteReader,
)
from zapstack.bootstrap.wire import (
    LATEST,
    MAX_BATCH,
    MAX_RANGE,
    SUB_BLOCKS,
    SUB_MEMPOOL,
    SUB_VOTES,
    RangeRequest,
    StateRequest,
    encode_range_request,
    encode_state_request,
)
from zapstack.errors import InvalidBlock, LocalProtocolError, RemoteProtocolError, WireCode
from zapstack.transport.streams import StreamType
from zapstack.verify.executor import HEAD_HEIGHT_META, HEAD_ID_META
from zapstack.zapdb.proofs import MAX_CHUNK_DEPTH, StateChunk, verify_chunk
from zapstack.zapdb.store import ZapDB
from zapstack.zapdb.txn import Txn

__all__ = ["BootstrapClient", "BootstrapConfig"]


@dataclass(frozen=True, slots=True)
class BootstrapConfig:
    """Client knobs (times in seconds of the injected clock)."""

    depth: int = 8
    """State chunks: the key-hash space is split into ``2**depth`` chunks."""
    batch: int = 16
    """Chunks per STATE_CHUNK request."""
    stall_timeout: float = 5.0
    """A request stream with no whole record for this long is cancelled (TIMEOUT)."""
    push_timeout: float = 10.0
    """A BLOCK_PUSH / MEMPOOL_GOSSIP stream open this long without FIN is stopped."""
    subscribe: int = SUB_BLOCKS | SUB_MEMPOOL | SUB_VOTES
    """Pushes asked of every peer."""
    chain_id: int | None = None
    """Chain id blocks must carry (None: any)."""


@dataclass(slots=True)
class _Peer:
    order: int
    head: int = -1
    excluded: set[StreamType] = field(default_factory=set)
    gone: bool = False


@dataclass(slots=True)
class _Req:
    peer: bytes
    stream_type: StreamType
    reader: ChunkReplyReader | RangeReplyReader
    deadline: float
    start: int
    count: int
    latest: bool = False
    done: int = 0
    """State chunks of this request verified and written."""


_PushReader = BlockPushReader | TxGossipReader | VoteReader
_PUSH_READERS: dict[StreamType, type[_PushReader]] = {
    StreamType.BLOCK_PUSH: BlockPushReader,
    StreamType.MEMPOOL_GOSSIP: TxGossipReader,
    StreamType.VOTE: VoteReader,
}
_TIMED_PUSHES = (StreamType.BLOCK_PUSH, StreamType.MEMPOOL_GOSSIP)


class BootstrapClient:
    """Bootstrap a fresh ZapDB from peers (see the module docstring)."""

    def __init__(
        self,
        db: ZapDB,
        check: CertCheck,
        applier: Applier,
        config: BootstrapConfig | None = None,
    ) -> None:
        self.config = cfg = config or BootstrapConfig()
        if not 0 <= cfg.depth <= MAX_CHUNK_DEPTH or not 1 <= cfg.batch <= MAX_BATCH:
            raise LocalProtocolError("depth or batch out of range")
        self.db = db
        self.applier = applier
        self.blocks = BlockBuffer(check, chain_id=cfg.chain_id)
        self.peers: dict[bytes, _Peer] = {}
        self.target: TargetChosen | None = None
        self.synced: StateSynced | None = None
        self.head_id = b""
        """Id of the last applied (or synced) block."""
        self.chunks_done = 0
        self.entries_written = 0
        self._txn: Txn | None = None
        self._todo: deque[tuple[int, int]] = deque()
        self._reqs: dict[int, _Req] = {}
        self._pushes: dict[tuple[bytes, int], tuple[_PushReader, float]] = {}
        self._ids = itertools.count(1)
        self._order = itertools.count()
        self._commands: deque[Command] = deque()
        self._events: deque[Event] = deque()

    # ------------------------------------------------------------ outputs

    def next_command(self) -> Command | None:
        """The next stream command for the transport, or None."""
        return self._commands.popleft() if self._commands else None

    def next_event(self) -> Event | None:
        """The next report, or None."""
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` next has work."""
        times = [r.deadline for r in self._reqs.values()]
        times += [t for (_, t) in self._pushes.values() if t != float("inf")]
        return min(times, default=None)

    def requests(self, peer: bytes | None = None) -> dict[int, tuple[bytes, StreamType, int, int]]:
        """Open requests: id -> (peer, stream type, start, count)."""
        return {
            i: (r.peer, r.stream_type, r.start, r.count)
            for i, r in self._reqs.items()
            if peer is None or r.peer == peer
        }

    @property
    def done(self) -> bool:
        """State synced (blocks may still be followed)."""
        return self.synced is not None

    @property
    def height(self) -> int:
        """Applied height (0 before the state sync)."""
        return self.blocks.floor if self.synced else 0

    def resume(self, height: int, head_id: bytes, root: bytes) -> None:
        """Follow only: ``db`` already holds the finalized state at ``height``.

        No state is downloaded; blocks above ``height`` are fetched (HEADER_RANGE
        gaps up to the heads peers report, plus subscribed pushes), checked and
        applied in order -- a node that fell behind or restarted.  Call before
        :meth:`add_peer`.
        """
        if self.target is not None:
            raise LocalProtocolError("resume() after a target was chosen")
        self.target = TargetChosen(height, head_id, root)
        self.synced = StateSynced(height, root, 0, 0)
        self.head_id = head_id
        self.blocks.raise_floor(height)

    # ------------------------------------------------------------ peers

    def add_peer(self, peer: bytes, now: float) -> None:
        """A connected peer: ask for its latest block and subscribe to its pushes."""
        if peer in self.peers:
            return
        self.peers[peer] = _Peer(next(self._order))
        req = RangeRequest(self.config.subscribe, LATEST, 1)
        self._open(peer, StreamType.HEADER_RANGE, encode_range_request(req), 0, 1, now, True)

    def peer_lost(self, peer: bytes, now: float) -> None:
        """The connection to ``peer`` ended: re-issue what it owed.  Idempotent."""
        state = self.peers.get(peer)
        if state is None or state.gone:
            return
        state.gone = True  # never used again
        for rid in [i for i, r in self._reqs.items() if r.peer == peer]:
            self._fail(rid, now)
        for key in [k for k in self._pushes if k[0] == peer]:
            del self._pushes[key]
        self._schedule(now)

    # ------------------------------------------------------------ request streams

    def response_data(self, req_id: int, data: bytes, now: float) -> None:
        """Reply bytes of request ``req_id``."""
        req = self._reqs.get(req_id)
        if req is None:
            return
        try:
            req.reader.receive_data(data)
            while req_id in self._reqs and (rec := req.reader.next_record()) is not None:
                req.deadline = now + self.config.stall_timeout
                self._on_record(req_id, req, rec, now)
        except RemoteProtocolError as exc:
            self._blame(req.peer, exc.code, str(exc), now)
        self._schedule(now)

    def response_end(self, req_id: int, now: float) -> None:
        """The peer finished reply ``req_id`` (FIN)."""
        req = self._reqs.get(req_id)
        if req is None:
            return
        try:
            req.reader.end_of_stream()
        except RemoteProtocolError as exc:
            self._blame(req.peer, exc.code, str(exc), now)
            return
        del self._reqs[req_id]
        if req.stream_type is StreamType.HEADER_RANGE and not req.latest and req.reader.records < 2:
            # no block at all (e.g. a state-synced peer below its own target): ask elsewhere
            self.peers[req.peer].excluded.add(req.stream_type)
        self._schedule(now)

    def response_reset(self, req_id: int, code: int, now: float) -> None:
        """The peer reset / stopped request ``req_id`` (NOT_FOUND, RATE_LIMITED ...)."""
        req = self._reqs.get(req_id)
        if req is None:
            return
        self.peers[req.peer].excluded.add(req.stream_type)
        self._fail(req_id, now)
        self._schedule(now)

    # ------------------------------------------------------------ push streams

    def push_data(
        self, peer: bytes, stream_type: StreamType, stream_id: int, data: bytes, now: float
    ) -> None:
        """Bytes of a push stream ``peer`` opened to us."""
        state = self.peers.get(peer)
        if state is None or state.gone:
            return
        key = (peer, stream_id)
        entry = self._pushes.get(key)
        if entry is None:
            limit = now + self.config.push_timeout if stream_type in _TIMED_PUSHES else float("inf")
            entry = self._pushes[key] = (_PUSH_READERS[stream_type](), limit)
        reader = entry[0]
        try:
            reader.receive_data(data)
            if not isinstance(reader, BlockPushReader):
                while (rec := reader.next_record()) is not None:
                    self._events.append(
                        VoteReceived(peer, stream_id, rec)
                        if isinstance(reader, VoteReader)
                        else TxGossiped(peer, rec)
                    )
            else:
                reader.next_record()  # early checks (magic, lengths)
        except RemoteProtocolError as exc:
            del self._pushes[key]
            self._commands.append(StopPush(peer, stream_id, exc.code))

    def push_end(self, peer: bytes, stream_id: int, now: float) -> None:
        """A push stream finished (FIN)."""
        entry = self._pushes.pop((peer, stream_id), None)
        if entry is None:
            return
        reader = entry[0]
        try:
            if isinstance(reader, BlockPushReader):
                self._on_block(peer, reader.finish(), now)
            else:
                reader.end_of_stream()
        except RemoteProtocolError as exc:
            self._blame(peer, exc.code, str(exc), now)
        self._schedule(now)

    def push_reset(self, peer: bytes, stream_id: int, code: int, now: float) -> None:
        """A push stream was reset: drop its partial buffer.  Idempotent."""
        self._pushes.pop((peer, stream_id), None)

    # ------------------------------------------------------------ time

    def handle_timer(self, now: float) -> None:
        """Cancel stalled streams and re-issue their work elsewhere."""
        for rid, req in sorted(self._reqs.items()):
            if req.deadline <= now:
                self._commands.append(CancelRequest(rid, req.peer, WireCode.TIMEOUT))
                self._events.append(StreamStalled(req.peer, req.stream_type, rid))
                self.peers[req.peer].excluded.add(req.stream_type)
                self._fail(rid, now)
        for (peer, sid), (_, limit) in sorted(self._pushes.items()):
            if limit <= now:
                del self._pushes[(peer, sid)]
                self._commands.append(StopPush(peer, sid, WireCode.TIMEOUT))
        self._schedule(now)

    def close(self) -> None:
        """Abandon the bootstrap: discard the state txn, forget streams.  Idempotent."""
        if self._txn is not None:
            self._txn.discard()
            self._txn = None
        for rid, req in sorted(self._reqs.items()):
            self._commands.append(CancelRequest(rid, req.peer, WireCode.CANCELLED))
        self._reqs.clear()
        self._pushes.clear()

    # ------------------------------------------------------------ internals

    def _open(
        self,
        peer: bytes,
        st: StreamType,
        data: bytes,
        start: int,
        count: int,
        now: float,
        latest: bool = False,
    ) -> None:
        rid = next(self._ids)
        if st is StreamType.STATE_CHUNK:
            reader: ChunkReplyReader | RangeReplyReader = ChunkReplyReader(
                self.config.depth, start, count
            )
        else:
            reader = RangeReplyReader(count)
        deadline = now + self.config.stall_timeout
        self._reqs[rid] = _Req(peer, st, reader, deadline, start, count, latest)
        self._commands.append(OpenRequest(rid, peer, st, data))

    def _fail(self, rid: int, now: float) -> None:
        """Forget request ``rid``; give its unfinished state chunks back to the queue."""
        req = self._reqs.pop(rid)
        if req.stream_type is StreamType.STATE_CHUNK:
            got = req.done
            if got < req.count:
                self._todo.appendleft((req.start + got, req.count - got))

    def _blame(self, peer: bytes, code: WireCode, reason: str, now: float) -> None:
        state = self.peers[peer]
        if state.gone:
            return
        state.gone = True
        self._events.append(PeerBlamed(peer, code, reason))
        for rid in [i for i, r in self._reqs.items() if r.peer == peer]:
            self._commands.append(CancelRequest(rid, peer, code))
            self._fail(rid, now)
        for key in [k for k in self._pushes if k[0] == peer]:
            del self._pushes[key]
            self._commands.append(StopPush(peer, key[1], code))

    def _on_record(
        self, rid: int, req: _Req, rec: StateChunk | int | RangeRecord, now: float
    ) -> None:
        if isinstance(rec, StateChunk):
            self._on_chunk(req, rec, now)
        elif isinstance(rec, int):
            self.peers[req.peer].head = rec
            self._events.append(HeadSeen(req.peer, rec))
            if req.latest:
                req.start = max(1, rec - req.count + 1)
        else:
            expected = req.start + req.reader.records - 2
            self._on_block(req.peer, rec, now, expected)

    def _on_chunk(self, req: _Req, chunk: StateChunk, now: float) -> None:
        assert self.target is not None and self._txn is not None
        if not verify_chunk(self.target.state_root, chunk):
            raise RemoteProtocolError(
                f"state chunk {chunk.index} fails the root", code=WireCode.BAD_CHUNK
            )
        for key, value in chunk.entries:
            self._txn.set(key, value)
        self.entries_written += len(chunk.entries)
        self.chunks_done += 1
        req.done += 1
        if self.chunks_done == 1 << self.config.depth:
            self._finish_state(now)

    def _on_block(self, peer: bytes, rec: RangeRecord, now: float, expected: int = -1) -> None:
        checked = self.blocks.check(rec.block, rec.cert, peer)
        if checked is None:
            raise RemoteProtocolError("certificate refused", code=WireCode.BAD_CERT)
        height = checked.view.height
        if expected >= 0 and height != expected:
            raise RemoteProtocolError(
                f"block {height} where {expected} was due", code=WireCode.BAD_FIELD
            )
        if self.target is None:
            self._choose_target(checked.view.height, checked.view.block_id, checked.view.state_root)
        if not self.blocks.add(checked):
            raise RemoteProtocolError(
                f"a second certified block at {height}", code=WireCode.BAD_BLOCK
            )
        self._apply_ready(now)

    def _choose_target(self, height: int, block_id: bytes, root: bytes) -> None:
        self.target = TargetChosen(height, block_id, root)
        self._events.append(self.target)
        self.blocks.raise_floor(height)
        self._txn = self.db.begin()
        n, b = 1 << self.config.depth, self.config.batch
        self._todo.extend((s, min(b, n - s)) for s in range(0, n, b))

    def _finish_state(self, now: float) -> None:
        assert self.target is not None and self._txn is not None
        txn, self._txn = self._txn, None
        root = txn.root()
        if root != self.target.state_root:  # unreachable with verified chunks: a bug
            txn.discard()
            raise LocalProtocolError("verified chunks do not rebuild the target root")
        txn.meta_set(HEAD_HEIGHT_META, self.target.height.to_bytes(8, "little"))
        txn.meta_set(HEAD_ID_META, self.target.block_id)
        txn.commit()
        self.head_id = self.target.block_id
        self.synced = StateSynced(self.target.height, root, self.chunks_done, self.entries_written)
        self._events.append(self.synced)
        self._apply_ready(now)

    def _apply_ready(self, now: float) -> None:
        if self.synced is None:
            return
        while (checked := self.blocks.pop(self.blocks.floor + 1)) is not None:
            view = checked.view
            try:
                if view.parent != self.head_id:
                    raise InvalidBlock("block does not extend the applied head")
                root = self.applier.apply(view, checked.cert)
            except InvalidBlock as exc:
                self._blame(checked.source, exc.code, str(exc), now)
                return
            self.blocks.raise_floor(view.height)
            self.head_id = view.block_id
            self._events.append(BlockApplied(view.height, view.block_id, root))

    def _usable(self, st: StreamType) -> list[bytes]:
        def ok(p: _Peer) -> bool:
            return not p.gone and st not in p.excluded

        live = [k for k, p in self.peers.items() if not p.gone]
        usable = [k for k, p in self.peers.items() if ok(p)]
        if not usable and live and not any(r.stream_type is st for r in self._reqs.values()):
            for k in live:  # everyone was excluded: give them another round
                self.peers[k].excluded.discard(st)
            usable = live
        return usable

    def _load(self, peer: bytes, st: StreamType) -> int:
        return sum(1 for r in self._reqs.values() if r.peer == peer and r.stream_type is st)

    def _schedule(self, now: float) -> None:
        if self.target is None:
            return
        st = StreamType.STATE_CHUNK
        if self._todo and self.synced is None:
            free = [p for p in self._usable(st) if self._load(p, st) == 0]
            for peer in free:
                if not self._todo:
                    break
                start, count = self._todo.popleft()
                req = StateRequest(self.target.state_root, self.config.depth, start, count)
                self._open(peer, st, encode_state_request(req), start, count, now)
        self._fetch_gaps(now)

    def _fetch_gaps(self, now: float) -> None:
        st = StreamType.HEADER_RANGE
        known = max((p.head for p in self.peers.values() if not p.gone), default=-1)
        if any(r.stream_type is st and not r.latest for r in self._reqs.values()):
            return
        gaps = self.blocks.missing(min(known, self.blocks.floor + MAX_RANGE))
        if not gaps:
            return
        start = gaps[0]
        count = min(MAX_RANGE, known - start + 1)
        cands = [p for p in self._usable(st) if self.peers[p].head >= start]
        if not cands:
            return
        peer = min(cands, key=lambda p: (self._load(p, st), self.peers[p].order))
        data = encode_range_request(RangeRequest(0, start, count))
        self._open(peer, st, data, start, count, now)
