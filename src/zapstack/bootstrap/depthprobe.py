"""The state's chunk depth, chosen from one verified chunk when the client is not told it.

Contract
--------
A fixed depth either splits a small state into many near-empty chunks or, past ~4 GB at
depth 8, into chunks a server refuses (over one record's 2^24 bytes, ``bootstrap.md``
§2), so the sync never ends.  With ``BootstrapConfig.depth = None`` the client first
asks one peer for one *probe* chunk of the target root: at depth 8, then 16, then 24
while peers refuse the probe with ``INTERNAL`` (a chunk over the server's bound).  The
probe's index comes from the root (:func:`probe_index`), so no peer picks which part of
the state is sampled.  The chunk is verified against the root
(:func:`~zapstack.zapdb.proofs.verify_chunk`) before it counts: a peer can make the
client try another peer (a refusal; a bad chunk is blamed), never choose the depth, and
the probe goes deeper only once two peers (or every live one, if fewer) refused it.
Key hashes spread entries evenly, so the state's encoded size is about the probe's
times ``2**probe_depth``, and :func:`choose_depth` takes the smallest depth whose chunks
are then at most :data:`AUTO_CHUNK_BYTES`, within ``MIN_AUTO_DEPTH..MAX_AUTO_DEPTH``.
The probe chunk itself is not kept (the sync then asks every chunk at the chosen
depth).  Sans-IO, single-threaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zapstack.bootstrap.wire import StateRequest
from zapstack.errors import WireCode
from zapstack.zapdb.proofs import ENTRY_OVERHEAD, StateChunk, verify_chunk

__all__ = [
    "AUTO_CHUNK_BYTES",
    "MAX_AUTO_DEPTH",
    "MIN_AUTO_DEPTH",
    "PROBE_DEPTHS",
    "DepthProbe",
    "choose_depth",
    "probe_index",
]

PROBE_DEPTHS = (8, 16, 24)
"""Depths a probe chunk is asked at, deeper after each refusal as too large."""
AUTO_CHUNK_BYTES = 256 << 10
"""Encoded entry bytes a chunk of the chosen depth should hold at most (a 16-chunk
request: ~4 MiB, well under a reply's 16 MiB bound)."""
MIN_AUTO_DEPTH = 8
"""At least 256 chunks (the fixed default before the probe), so that several peers serve
one sync; a state up to ~64 MiB keeps that depth, a larger one goes deeper."""
MAX_AUTO_DEPTH = 20
"""At most ~1M chunks (the client's chunk table: ~90 bytes a chunk)."""


def probe_index(root: bytes, depth: int) -> int:
    """The chunk probed at ``depth``: the root's first ``depth`` bits (0 for depth 0)."""
    return int.from_bytes(root[:3], "big") >> (24 - depth)


def choose_depth(chunk: StateChunk) -> int:
    """The depth for a state sampled by the verified ``chunk`` (see the module docstring)."""
    sample = sum(ENTRY_OVERHEAD + len(k) + len(v) for k, v in chunk.entries)
    estimate = sample << chunk.depth
    depth = MIN_AUTO_DEPTH
    while depth < MAX_AUTO_DEPTH and estimate > AUTO_CHUNK_BYTES << depth:  # exact: no shift
        depth += 1
    return depth


@dataclass(slots=True)
class DepthProbe:
    """The probe of one target ``root``: which request is out, at what depth, and which
    peers refused it there as too large."""

    root: bytes
    level: int = 0
    """Index into :data:`PROBE_DEPTHS`."""
    rid: int | None = None
    """The open probe request's id (None: none open)."""
    refusers: set[bytes] = field(default_factory=set)
    """Peers that refused the probe at this level with ``INTERNAL``."""

    @property
    def depth(self) -> int:
        return PROBE_DEPTHS[self.level]

    def request(self) -> StateRequest:
        """The probe request to send (one chunk)."""
        return StateRequest(self.root, self.depth, probe_index(self.root, self.depth), 1)

    def pick(self, candidates: list[bytes]) -> bytes | None:
        """The peer to ask the probe of: the first candidate that has not refused it at
        this depth (None: none, or a probe is already open)."""
        if self.rid is not None:
            return None
        return next((p for p in candidates if p not in self.refusers), None)

    def refused(self, peer: bytes, code: int, live: int) -> bool:
        """``peer`` refused the probe with ``code`` (``live`` peers are connected): True if
        it keeps its right to be asked for state.  ``INTERNAL`` says the chunk passes the
        server's bound: once two peers (or every live one, if fewer) said so at this depth,
        the probe goes one level deeper, so one peer alone cannot push it down (where one
        chunk samples too little of a small state).  At the last depth, or with another
        code, the peer is not asked for state again.  (The caller clears :attr:`rid` when
        it forgets the request.)"""
        if code != WireCode.INTERNAL or self.level + 1 == len(PROBE_DEPTHS):
            return False
        self.refusers.add(peer)
        if len(self.refusers) >= min(2, max(1, live)):
            self.level += 1
            self.refusers.clear()
        return True

    def answer(self, chunk: StateChunk) -> int | None:
        """The depth chosen from the probe's reply ``chunk``, or None if it is not the
        chunk asked for or fails the root (its sender is to blame)."""
        asked = (self.depth, probe_index(self.root, self.depth))
        if (chunk.depth, chunk.index) != asked or not verify_chunk(self.root, chunk):
            return None
        return choose_depth(chunk)
