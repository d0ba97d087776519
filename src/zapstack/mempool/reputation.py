"""Peer reputation: a score per peer, decremented by a penalty table.

Contract
--------
Scores start at 0 and only go down through :meth:`Reputation.penalize`
(``node/`` decides what to do with a low score: deprioritise, disconnect).
The penalty is a table keyed by wire code: malformed frames (stages 1-4) cost
the most, a stalled stream less, and stage-5 outcomes that honest peers
produce during normal gossip (a duplicate, a full pool) cost nothing.
At most :data:`MAX_PEERS` peers are scored: a client's id is its own key, so a
hostile one can bring a new id per connection; past the bound the peer scored
longest ago is forgotten (it starts again from 0, as a new id would).
"""

from __future__ import annotations

from zapstack.errors import WireCode

__all__ = ["DEFAULT_PENALTY", "MAX_PEERS", "PENALTY", "Reputation"]

MAX_PEERS = 65_536
"""Most peers with a score kept (the oldest-scored is forgotten past it)."""

DEFAULT_PENALTY = 10
"""Penalty for any stage 1-4 wire code not listed in :data:`PENALTY`."""

PENALTY: dict[WireCode, int] = {
    WireCode.BAD_SIGNATURE: 20,
    WireCode.TRUNCATED: 5,
    WireCode.TIMEOUT: 5,
    WireCode.FEE_TOO_LOW: 1,
    WireCode.NONCE_TOO_LOW: 1,
    WireCode.BAD_NONCE: 1,
    WireCode.INSUFFICIENT_BALANCE: 1,
    WireCode.DUPLICATE: 0,
    WireCode.MEMPOOL_FULL: 0,
}
"""Wire code -> reputation cost (codes not listed cost :data:`DEFAULT_PENALTY`)."""


class Reputation:
    """Scores by peer id."""

    __slots__ = ("_scores", "max_peers")

    def __init__(self, max_peers: int = MAX_PEERS) -> None:
        self.max_peers = max_peers
        self._scores: dict[bytes, int] = {}
        """Peer -> score, oldest-scored first (a penalty moves a peer to the end)."""

    def score(self, peer: bytes) -> int:
        """The peer's score (0 for a peer never penalised)."""
        return self._scores.get(peer, 0)

    def penalize(self, peer: bytes, code: WireCode) -> int:
        """Charge the peer for ``code``; returns its new score."""
        cost = PENALTY.get(code, DEFAULT_PENALTY)
        score = self._scores.pop(peer, 0) - cost
        if score:
            self._scores[peer] = score
        while len(self._scores) > self.max_peers:
            del self._scores[next(iter(self._scores))]
        return score

    def scores(self) -> dict[bytes, int]:
        """A copy of every non-zero score."""
        return dict(self._scores)
