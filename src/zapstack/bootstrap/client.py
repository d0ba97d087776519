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

Phases: *head* -> *state* -> *follow*.  The first latest-block reply whose block
parses and whose certificate passes the injected check fixes the target (height, block
id, ``state_root``).  Its state is downloaded (:mod:`~zapstack.bootstrap.statephase`: at
the configured chunk depth, or one a verified probe chunk gives) in batches handed to
free usable peers and verified chunk by chunk into one ZapDB txn; once it is committed
the node follows blocks above the target, applying them in height order through the
:class:`~zapstack.bootstrap.follow.Applier`.

Stall recovery is per stream.  A request stream (:mod:`~zapstack.bootstrap.requests`)
past its deadline is cancelled alone (:class:`CancelRequest` with ``TIMEOUT``), its peer
excluded from that request kind, and what it still owed re-issued to a different peer;
the peer's other streams are untouched.  A push stream (:mod:`~zapstack.bootstrap.pushes`)
open ``push_timeout`` without FIN is stopped (``TIMEOUT``); the block it carried is
fetched by HEADER_RANGE elsewhere when a gap shows.

Unwind: :meth:`peer_lost` and :meth:`close` are idempotent; a lost peer's
requests are re-issued, its partial buffers dropped.
"""

from __future__ import annotations

from collections import deque

from zapstack.bootstrap.config import MAX_WINDOW, BootstrapConfig
from zapstack.bootstrap.events import (
    NO_PROGRESS,
    BlockApplied,
    CancelRequest,
    Command,
    Event,
    HeadSeen,
    OpenRequest,
    PeerBlamed,
    StateProgress,
    StateSynced,
    StopPush,
    StreamStalled,
    TargetChosen,
)
from zapstack.bootstrap.follow import Applier, BlockBuffer, CertCheck
from zapstack.bootstrap.pushes import PushStreams
from zapstack.bootstrap.readers import RangeRecord
from zapstack.bootstrap.requests import Request, RequestStreams
from zapstack.bootstrap.statephase import StatePhase
from zapstack.bootstrap.wire import (
    LATEST,
    MAX_BATCH,
    RangeRequest,
    StateRequest,
    encode_range_request,
    encode_state_request,
)
from zapstack.errors import InvalidBlock, LocalProtocolError, RemoteProtocolError, WireCode
from zapstack.transport.streams import StreamType
from zapstack.zapdb.proofs import MAX_CHUNK_DEPTH, StateChunk
from zapstack.zapdb.store import ZapDB

__all__ = ["BootstrapClient"]


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
        bad_depth = cfg.depth is not None and not 0 <= cfg.depth <= MAX_CHUNK_DEPTH
        if bad_depth or not 1 <= cfg.batch <= MAX_BATCH:
            raise LocalProtocolError("depth or batch out of range")
        if not 1 <= cfg.window <= MAX_WINDOW:
            raise LocalProtocolError(f"window {cfg.window} outside 1..{MAX_WINDOW}")
        self.db = db
        self.applier = applier
        self.blocks = BlockBuffer(check, chain_id=cfg.chain_id)
        self._reqs = RequestStreams(cfg.depth or 0, cfg.stall_timeout)
        self.peers = self._reqs.peers
        self.target: TargetChosen | None = None
        self.synced: StateSynced | None = None
        self.head_id = b""
        """Id of the last applied (or synced) block."""
        self._state: StatePhase | None = None
        self._pushes = PushStreams(cfg.push_timeout)
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
        push = self._pushes.next_deadline()
        times = self._reqs.deadlines()
        return min([*times, push] if push is not None else times, default=None)

    def requests(self, peer: bytes | None = None) -> dict[int, tuple[bytes, StreamType, int, int]]:
        """Open requests: id -> (peer, stream type, start, count)."""
        return self._reqs.listing(peer)

    @property
    def progress(self) -> StateProgress:
        """How far the state download is (:data:`~zapstack.bootstrap.events.NO_PROGRESS`
        before its target and while the depth probe runs)."""
        return self._state.progress if self._state else NO_PROGRESS

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
        if not self._reqs.add_peer(peer):
            return
        req = RangeRequest(self.config.subscribe, LATEST, 1)
        self._open(peer, StreamType.HEADER_RANGE, encode_range_request(req), 0, 1, now, True)

    def peer_lost(self, peer: bytes, now: float) -> None:
        """The connection to ``peer`` ended: re-issue what it owed.  Idempotent."""
        state = self.peers.get(peer)
        if state is None or state.gone:
            return
        state.gone = True  # never used again
        for rid in self._reqs.of_peer(peer):
            self._fail(rid, now)
        self._pushes.drop_peer(peer)
        self._schedule(now)

    # ------------------------------------------------------------ request streams

    def response_data(self, req_id: int, data: bytes, now: float) -> None:
        """Reply bytes of request ``req_id``."""
        req = self._reqs.get(req_id)
        if req is None:
            return
        try:
            req.reader.receive_data(data)
            chunks: list[StateChunk] = []  # a reply holds chunks only: checked together
            while req_id in self._reqs and (rec := req.reader.next_record()) is not None:
                req.deadline = now + self.config.stall_timeout
                if isinstance(rec, StateChunk):
                    chunks.append(rec)
                else:
                    self._on_record(req, rec, now)
            if chunks:
                self._on_chunks(req_id, req, chunks, now)
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
        self._reqs.pop(req_id)
        if req.stream_type is StreamType.HEADER_RANGE and not req.latest and req.reader.records < 2:
            self.peers[req.peer].excluded.add(req.stream_type)  # no block (synced above): elsewhere
        else:
            self._reqs.answered(req.stream_type)
        self._schedule(now)

    def response_reset(self, req_id: int, code: int, now: float) -> None:
        """The peer reset / stopped request ``req_id``: :meth:`RequestStreams.refused`."""
        req = self._reqs.get(req_id)
        if req is None:
            return
        if self._state is not None and req.stream_type is StreamType.STATE_CHUNK:
            self._state.refused(req_id, req, code)
        else:
            self._reqs.refused(req, code)
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
        records, code = self._pushes.data(peer, stream_type, stream_id, data, now)
        self._events.extend(records)
        if code is not None:
            self._commands.append(StopPush(peer, stream_id, code))

    def push_end(self, peer: bytes, stream_id: int, now: float) -> None:
        """A push stream finished (FIN)."""
        try:
            known, record = self._pushes.end(peer, stream_id)
            if not known:
                return
            if record is not None:
                self._on_block(peer, record, now)
        except RemoteProtocolError as exc:
            self._blame(peer, exc.code, str(exc), now)
        self._schedule(now)

    def push_reset(self, peer: bytes, stream_id: int, code: int, now: float) -> None:
        """A push stream was reset: drop its partial buffer.  Idempotent."""
        self._pushes.reset(peer, stream_id)

    # ------------------------------------------------------------ time

    def handle_timer(self, now: float) -> None:
        """Cancel stalled streams and re-issue their work elsewhere."""
        for rid, req in self._reqs.in_order():
            if req.deadline <= now:
                self._commands.append(CancelRequest(rid, req.peer, WireCode.TIMEOUT))
                self._events.append(StreamStalled(req.peer, req.stream_type, rid))
                self.peers[req.peer].excluded.add(req.stream_type)
                self._fail(rid, now)
        for peer, sid in self._pushes.expired(now):
            self._commands.append(StopPush(peer, sid, WireCode.TIMEOUT))
        self._schedule(now)

    def close(self) -> None:
        """Abandon the bootstrap: discard the state txn, forget streams.  Idempotent."""
        if self._state is not None:
            self._state.discard()
        for rid, req in self._reqs.in_order():
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
        depth: int | None = None,
    ) -> int:
        rid = self._reqs.open(peer, st, start, count, now, latest, depth)
        self._commands.append(OpenRequest(rid, peer, st, data))
        return rid

    def _fail(self, rid: int, now: float) -> None:
        """Forget request ``rid``; give its unfinished state chunks back to the queue."""
        req = self._reqs.pop(rid)
        if req.stream_type is StreamType.STATE_CHUNK and self._state is not None:
            self._state.failed(rid, req)

    def _blame(self, peer: bytes, code: WireCode, reason: str, now: float) -> None:
        state = self.peers[peer]
        if state.gone:
            return
        state.gone = True
        self._events.append(PeerBlamed(peer, code, reason))
        for rid in self._reqs.of_peer(peer):
            self._commands.append(CancelRequest(rid, peer, code))
            self._fail(rid, now)
        for sid in self._pushes.drop_peer(peer):
            self._commands.append(StopPush(peer, sid, code))

    def _on_record(self, req: Request, rec: int | RangeRecord, now: float) -> None:
        if isinstance(rec, int):
            self.peers[req.peer].head = rec
            self._events.append(HeadSeen(req.peer, rec))
            if req.latest:
                req.start = max(1, rec - req.count + 1)
        else:
            expected = req.start + req.reader.records - 2
            self._on_block(req.peer, rec, now, expected)

    def _on_chunks(self, rid: int, req: Request, chunks: list[StateChunk], now: float) -> None:
        assert self._state is not None
        if self._state.on_chunks(rid, req, chunks):
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
        self._state = StatePhase(self.db, self.target, self.config, self._reqs)

    def _finish_state(self, now: float) -> None:
        assert self.target is not None and self._state is not None
        self.synced = self._state.commit()
        self.head_id = self.target.block_id
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

    def _schedule(self, now: float) -> None:
        if self.target is None:
            return
        state, st = self._state, StreamType.STATE_CHUNK
        if state is not None and state.wants and self.synced is None:

            def open_(peer: bytes, req: StateRequest) -> int:
                data, n = encode_state_request(req), req.count
                return self._open(peer, st, data, req.start, n, now, depth=req.depth)

            slots = self._reqs.free(st, now, self.config.window)
            state.schedule(slots, lambda peer: self.peers[peer].state_batch, open_)
        self._fetch_gaps(now)

    def _fetch_gaps(self, now: float) -> None:
        gap = self._reqs.next_gap(self.blocks.floor, self.blocks.missing, now)
        if gap is not None:
            peer, start, count = gap
            data = encode_range_request(RangeRequest(0, start, count))
            self._open(peer, StreamType.HEADER_RANGE, data, start, count, now)
