"""The bootstrap client's request streams and the peers it sends them to.

:class:`RequestStreams` keeps the connected peers
(:class:`PeerState`: connection order, reported head, request kinds it is
excluded from, gone or not) and the open STATE_CHUNK / HEADER_RANGE request
streams by id (:class:`Request`: its reply reader, deadline and range).  A
request's deadline is ``stall_timeout`` after it was opened; the client moves
it on whenever the stream delivers a whole record.  :meth:`RequestStreams.usable`
answers which peers may be asked for a request kind; when every live peer is
excluded from it and none such request is open, the exclusions are cleared
(everyone gets another round: at once the first time, then after a wait that doubles
from :data:`ROUND_BACKOFF` until a request of that kind is answered whole).

It also picks who is asked: :meth:`RequestStreams.free` slots for state
batches (up to the client's ``window`` STATE_CHUNK requests open per peer),
and :meth:`RequestStreams.next_gap` for missing heights (one such HEADER_RANGE
at a time, to the least-loaded peer whose head covers the gap).  What a failure
re-issues is the client's (:mod:`zapstack.bootstrap.client`).  Single-threaded, no IO.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from zapstack.bootstrap.readers import ChunkReplyReader, RangeReplyReader
from zapstack.bootstrap.wire import MAX_RANGE
from zapstack.errors import WireCode
from zapstack.transport.streams import StreamType

__all__ = ["ROUND_BACKOFF", "ROUND_BACKOFF_MAX", "PeerState", "Request", "RequestStreams"]

ROUND_BACKOFF = 0.5
"""Seconds before the second round of a request kind every live peer was excluded from (the
first is at once); each further round waits twice as long, up to :data:`ROUND_BACKOFF_MAX`,
until a request of that kind is answered."""
ROUND_BACKOFF_MAX = 30.0


@dataclass(slots=True)
class PeerState:
    """What the client knows of one connected peer."""

    order: int
    """Connection order (ties go to the earlier peer)."""
    head: int = -1
    """Latest finalized height it reported (-1: none yet)."""
    excluded: set[StreamType] = field(default_factory=set)
    """Request kinds not to ask of it (it stalled, reset them or had nothing)."""
    gone: bool = False
    """Disconnected or blamed: never used again."""
    state_batch: int | None = None
    """Most state chunks to ask of it at once, once it refused a larger request as past its
    reply's bound (None: the client's ``batch``)."""


@dataclass(slots=True)
class Request:
    """One open request stream."""

    peer: bytes
    """The peer asked."""
    stream_type: StreamType
    """STATE_CHUNK or HEADER_RANGE."""
    reader: ChunkReplyReader | RangeReplyReader
    """Parses its reply."""
    deadline: float
    """When it is due to be cancelled as stalled."""
    start: int
    """First chunk index / height asked."""
    count: int
    """Chunks / blocks asked."""
    latest: bool = False
    """The first HEADER_RANGE of a peer: its latest block, plus the subscriptions."""
    done: int = 0
    """State chunks of this request verified and written."""


class RequestStreams:
    """Peers and open requests (see the module docstring)."""

    def __init__(self, depth: int, stall_timeout: float) -> None:
        self.depth = depth
        """The state's chunk depth (the client sets it once a probe chose it)."""
        self.stall_timeout = stall_timeout
        self.peers: dict[bytes, PeerState] = {}
        """Every peer ever added, by node id."""
        self._reqs: dict[int, Request] = {}
        self._ids = itertools.count(1)
        self._order = itertools.count()
        self._rounds: dict[StreamType, tuple[float, float, bool]] = {}
        """Kind -> (no new round before, the last wait, a round is waiting for that time)."""

    # ------------------------------------------------------------ peers

    def add_peer(self, peer: bytes) -> bool:
        """Record a newly connected peer; False if it was known already."""
        if peer in self.peers:
            return False
        self.peers[peer] = PeerState(next(self._order))
        return True

    def usable(self, st: StreamType, now: float) -> list[bytes]:
        """Peers that may be asked for ``st`` (see the module docstring), in connection order.
        When every live peer is excluded and none such request is open they get another
        round: at once the first time, then after :data:`ROUND_BACKOFF` doubling."""

        def ok(p: PeerState) -> bool:
            return not p.gone and st not in p.excluded

        live = [k for k, p in self.peers.items() if not p.gone]
        usable = [k for k, p in self.peers.items() if ok(p)]
        if not usable and live and not any(r.stream_type is st for r in self._reqs.values()):
            not_before, wait, _ = self._rounds.get(st, (now, 0.0, False))
            if now < not_before:
                self._rounds[st] = (not_before, wait, True)  # a timer brings the round
                return []
            wait = ROUND_BACKOFF if wait == 0 else min(ROUND_BACKOFF_MAX, 2 * wait)
            self._rounds[st] = (now + wait, wait, False)
            for k in live:  # everyone was excluded: give them another round
                self.peers[k].excluded.discard(st)
            usable = live
        return usable

    def answered(self, st: StreamType) -> None:
        """A request of kind ``st`` was answered whole: the next round of it is at once."""
        self._rounds.pop(st, None)

    def known_head(self) -> int:
        """The highest head a live peer reported (-1: none)."""
        return max((p.head for p in self.peers.values() if not p.gone), default=-1)

    def free(self, st: StreamType, now: float, window: int = 1) -> list[bytes]:
        """The open slots for requests of kind ``st``: each usable peer once per request it
        may still take (at most ``window`` open at once per peer), least-loaded first,
        ties in connection order -- every peer's first slot before anyone's second."""
        open_now = [(self.load(p, st), n, p) for n, p in enumerate(self.usable(st, now))]
        slots = sorted((level, n, p) for load, n, p in open_now for level in range(load, window))
        return [p for _, _, p in slots]

    def next_gap(
        self, floor: int, missing: Callable[[int], list[int]], now: float
    ) -> tuple[bytes, int, int] | None:
        """``(peer, start, count)`` of the HEADER_RANGE to fetch missing heights with, or None.

        ``missing(upto)`` lists the heights ``floor+1 .. upto`` not held.  None
        while such a request is open, when nothing below the known heads is
        missing, or no usable peer reported a head at ``start``; otherwise the
        least-loaded of those peers (ties: connection order), at most
        ``MAX_RANGE`` blocks.
        """
        st = StreamType.HEADER_RANGE
        known = self.known_head()
        if self.fetching_gaps():
            return None
        gaps = missing(min(known, floor + MAX_RANGE))
        if not gaps:
            return None
        start = gaps[0]
        count = min(MAX_RANGE, known - start + 1)
        cands = [p for p in self.usable(st, now) if self.peers[p].head >= start]
        if not cands:
            return None
        peer = min(cands, key=lambda p: (self.load(p, st), self.peers[p].order))
        return peer, start, count

    # ------------------------------------------------------------ requests

    def open(
        self,
        peer: bytes,
        st: StreamType,
        start: int,
        count: int,
        now: float,
        latest: bool,
        depth: int | None = None,
    ) -> int:
        """Record a new request of ``count`` chunks (at :attr:`depth`, or ``depth``) / blocks
        from ``start``; its id."""
        rid = next(self._ids)
        if st is StreamType.STATE_CHUNK:
            at = self.depth if depth is None else depth
            reader: ChunkReplyReader | RangeReplyReader = ChunkReplyReader(at, start, count)
        else:
            reader = RangeReplyReader(count)
        deadline = now + self.stall_timeout
        self._reqs[rid] = Request(peer, st, reader, deadline, start, count, latest)
        return rid

    def refused(self, req: Request, code: int) -> None:
        """``req``'s peer reset it: that peer is not asked that kind again, except for
        ``INTERNAL`` on a STATE_CHUNK request of several chunks still owed -- their reply
        passes the server's bound (``bootstrap.md`` §2), a smaller one may be served -- after
        which it is asked half as many at a time (:attr:`PeerState.state_batch`)."""
        owed, peer = req.count - req.done, self.peers[req.peer]
        if req.stream_type is StreamType.STATE_CHUNK and code == WireCode.INTERNAL and owed > 1:
            peer.state_batch = owed // 2
        else:
            peer.excluded.add(req.stream_type)

    def get(self, rid: int) -> Request | None:
        """The open request ``rid``, or None."""
        return self._reqs.get(rid)

    def __contains__(self, rid: int) -> bool:
        return rid in self._reqs

    def pop(self, rid: int) -> Request:
        """Forget the open request ``rid``."""
        return self._reqs.pop(rid)

    def of_peer(self, peer: bytes) -> list[int]:
        """Ids of the open requests to ``peer``, oldest first."""
        return [i for i, r in self._reqs.items() if r.peer == peer]

    def in_order(self) -> list[tuple[int, Request]]:
        """Every open request, by id."""
        return sorted(self._reqs.items())

    def clear(self) -> None:
        """Forget every open request."""
        self._reqs.clear()

    def listing(self, peer: bytes | None) -> dict[int, tuple[bytes, StreamType, int, int]]:
        """Open requests (of ``peer``, or all): id -> (peer, stream type, start, count)."""
        return {
            i: (r.peer, r.stream_type, r.start, r.count)
            for i, r in self._reqs.items()
            if peer is None or r.peer == peer
        }

    def deadlines(self) -> list[float]:
        """The open requests' deadlines, and when a waiting round is due."""
        waiting = [at for at, _, due in self._rounds.values() if due]
        return [r.deadline for r in self._reqs.values()] + waiting

    def load(self, peer: bytes, st: StreamType) -> int:
        """Open requests of kind ``st`` to ``peer``."""
        return sum(1 for r in self._reqs.values() if r.peer == peer and r.stream_type is st)

    def fetching_gaps(self) -> bool:
        """Whether a HEADER_RANGE for missing heights (not a peer's latest) is open."""
        st = StreamType.HEADER_RANGE
        return any(r.stream_type is st and not r.latest for r in self._reqs.values())
