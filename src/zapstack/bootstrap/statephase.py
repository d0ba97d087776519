"""The bootstrap client's state phase for one target: the depth probe, then the download.

Contract
--------
:class:`StatePhase` owns what the client asks for the target's state and what it does
with the answers.  With a configured depth it starts the
:class:`~zapstack.bootstrap.statesync.StateDownload` at once; without one it first runs a
:class:`~zapstack.bootstrap.depthprobe.DepthProbe` (one request at a time; no batch is
asked before the depth is chosen) and starts the download at the depth the verified
probe chunk gives.  :meth:`schedule` says which requests to open on the free slots it is
given, :meth:`on_chunks` takes a reply's chunks (raising the ``BAD_CHUNK`` error that
blames their sender), :meth:`refused` and :meth:`failed` take a request that ended
without them.  The chunk depth of the requests it opens is the request streams' own
(:attr:`RequestStreams.depth <zapstack.bootstrap.requests.RequestStreams.depth>`, set
when the download starts) or, for a probe, the probe's.  Sans-IO, single-threaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from zapstack.bootstrap.config import BootstrapConfig
from zapstack.bootstrap.depthprobe import DepthProbe
from zapstack.bootstrap.events import NO_PROGRESS, StateProgress, StateSynced, TargetChosen
from zapstack.bootstrap.requests import Request, RequestStreams
from zapstack.bootstrap.statesync import StateDownload, chunk_failed
from zapstack.bootstrap.wire import StateRequest
from zapstack.zapdb.proofs import StateChunk
from zapstack.zapdb.store import ZapDB

__all__ = ["Opener", "StatePhase"]

Opener = Callable[[bytes, StateRequest], int]
"""Opens a STATE_CHUNK request to a peer (at the request's depth); the request's id."""


class StatePhase:
    """The state of ``target`` into ``db`` at ``config.depth`` or a probe's (see the module
    docstring)."""

    def __init__(
        self, db: ZapDB, target: TargetChosen, config: BootstrapConfig, reqs: RequestStreams
    ) -> None:
        self._db, self._target, self._batch, self._reqs = db, target, config.batch, reqs
        self.download: StateDownload | None = None
        self.probe = DepthProbe(target.state_root) if config.depth is None else None
        if config.depth is not None:
            self._start(config.depth)

    def _start(self, depth: int) -> None:
        self._reqs.depth = depth
        self.download = StateDownload(self._db, self._target, depth, self._batch)

    @property
    def progress(self) -> StateProgress:
        """The download's progress (:data:`~zapstack.bootstrap.events.NO_PROGRESS` while
        probing)."""
        return self.download.progress if self.download else NO_PROGRESS

    @property
    def wants(self) -> bool:
        """Whether a request is due: the probe has none open, or batches wait."""
        if self.probe is not None:
            return self.probe.rid is None
        return self.download is not None and self.download.pending

    def schedule(
        self, slots: Sequence[bytes], most: Callable[[bytes], int | None], open_: Opener
    ) -> None:
        """Open what is due on the free ``slots`` (a peer once per request it may take;
        ``most(peer)``: the most chunks to ask of it at once)."""
        probe, state = self.probe, self.download
        if probe is not None and (peer := probe.pick(list(slots))) is not None:
            probe.rid = open_(peer, probe.request())
        if state is None:
            return
        for peer in slots:
            if not state.pending:
                break
            start, count = state.next_batch(most(peer))
            open_(peer, StateRequest(self._target.state_root, self._reqs.depth, start, count))

    def on_chunks(self, rid: int, req: Request, chunks: list[StateChunk]) -> bool:
        """Take a reply's verified ``chunks`` (``req``'s, id ``rid``); True once every chunk
        is in.  Raises the ``BAD_CHUNK`` error for the first that fails the root."""
        if self.probe is not None and rid == self.probe.rid:
            depth = self.probe.answer(chunks[0])
            if depth is None:
                raise chunk_failed(chunks[0])
            self.probe, req.done = None, req.count
            self._start(depth)
            return False
        assert self.download is not None
        good, complete = self.download.write_many(chunks)
        req.done += good
        if good < len(chunks):
            raise chunk_failed(chunks[good])
        return complete

    def refused(self, rid: int, req: Request, code: int) -> None:
        """``req``'s peer reset it with ``code`` (then call :meth:`failed`)."""
        if self.probe is None or rid != self.probe.rid:
            self._reqs.refused(req, code)
            return
        live = sum(1 for p in self._reqs.peers.values() if not p.gone)
        if not self.probe.refused(req.peer, code, live):
            self._reqs.peers[req.peer].excluded.add(req.stream_type)

    def failed(self, rid: int, req: Request) -> None:
        """Request ``rid`` ended unfinished: its chunks are asked again (a probe: of
        another peer if this one is out)."""
        if self.probe is not None and rid == self.probe.rid:
            self.probe.rid = None
        elif req.done < req.count:
            assert self.download is not None
            self.download.give_back(req.start + req.done, req.count - req.done)

    def commit(self) -> StateSynced:
        """Commit the complete download (:meth:`StateDownload.commit`)."""
        assert self.download is not None
        return self.download.commit()

    def discard(self) -> None:
        """Abandon it (idempotent)."""
        if self.download is not None:
            self.download.discard()
