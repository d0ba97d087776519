"""Is this node healthy?  The exact rule behind ``GET /health``.

Contract
--------
A node is **healthy** when every one of these holds (each failing one is a
reason, in this order):

1. ``halted``: it is not halted (no fault, ``--halt-height`` not reached);
2. ``state_sync``: it is not state-syncing an empty data folder;
3. ``catching_up``: no catch-up is running;
4. ``no_quorum``: it holds open connections to enough validators that their
   weight with its own reaches the commit threshold (⌊2n/3⌋+1 of n equal
   weights): without them nothing it holds can finalize;
5. ``behind``: its height is within 1 of the *peers' height*, the
   (f+1)-th highest height heard from distinct validators (f = ⌊(n−1)/3⌋),
   a height at least one honest validator has reached; one faulty validator
   announcing a huge height cannot make it unhealthy.  A consensus message of
   a validator deciding height H says it has finalized H−1; we are behind when
   that exceeds our finalized height by more than 1.  Fewer than f+1 heights
   heard: no such check (rule 4 covers an isolated node).

:class:`PeerHeights` records the latest height each validator announced
(bounded: one entry per validator index).  :func:`assess` only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Health", "PeerHeights", "assess"]


class PeerHeights:
    """The highest height each other validator's consensus messages named."""

    def __init__(self, n: int, me: int) -> None:
        self.n = n
        self.me = me
        self.heights: dict[int, int] = {}

    def note(self, sender: int, height: int) -> None:
        """A consensus message of ``sender`` about ``height`` (others are ignored)."""
        known = 0 <= sender < self.n and sender != self.me
        if known and height > self.heights.get(sender, -1):
            self.heights[sender] = height

    def peers_height(self) -> int | None:
        """The (f+1)-th highest height heard (see the module contract), or None."""
        f = (self.n - 1) // 3
        heard = sorted(self.heights.values(), reverse=True)
        return heard[f] if len(heard) > f else None


@dataclass(frozen=True, slots=True)
class Health:
    """The verdict and what it was read from."""

    ok: bool
    """True iff ``reasons`` is empty."""
    reasons: tuple[str, ...]
    """Failed rules (see the module contract), in rule order."""
    height: int
    """Our finalized height."""
    peers_height: int | None
    """The peers' finalized height (rule 5), None when too few heard."""
    connected: tuple[int, ...]
    """Validators we hold an open connection to."""
    quorum_weight: int
    """Weight needed (the commit threshold)."""
    weight: int
    """Our weight plus the connected validators'."""

    def body(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "ok": self.ok,
            "reasons": list(self.reasons),
            "height": self.height,
            "peers_height": self.peers_height,
            "connected": list(self.connected),
            "quorum_weight": self.quorum_weight,
            "weight": self.weight,
        }


def assess(node: Any) -> Health:
    """The health of a running node, read off its parts."""
    consensus = node.consensus
    vset = node.g.vset
    height = consensus.height - 1
    connected = tuple(node.conns.connected())
    weight = vset.weight_of([node.me, *connected])
    heard = node.sync.heights.peers_height()
    peers_final = None if heard is None else heard - 1
    checks = (
        ("halted", consensus.halted or node.fatal is not None),
        ("state_sync", bool(node.needs_sync)),
        ("catching_up", bool(node.sync.catching_up)),
        ("no_quorum", weight < vset.threshold_weight),
        ("behind", peers_final is not None and peers_final > height + 1),
    )
    reasons = tuple(name for name, failed in checks if failed)
    return Health(
        ok=not reasons,
        reasons=reasons,
        height=height,
        peers_height=peers_final,
        connected=connected,
        quorum_weight=vset.threshold_weight,
        weight=weight,
    )
