"""The bootstrap client's knobs: state chunking, stall and push timeouts, subscriptions.

One frozen value per client; every time is in seconds of the client's
injected clock (``now``), never the wall clock.  The client checks ``depth``,
``batch`` and ``window`` against the wire limits when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass

from zapstack.bootstrap.wire import SUB_BLOCKS, SUB_MEMPOOL, SUB_VOTES

__all__ = ["MAX_WINDOW", "BootstrapConfig"]

MAX_WINDOW = 8
"""Most STATE_CHUNK requests a client keeps open per peer (a small share of the
transport's 64 concurrent streams per peer)."""


@dataclass(frozen=True, slots=True)
class BootstrapConfig:
    """Client knobs (times in seconds of the injected clock)."""

    depth: int | None = None
    """State chunks: the key-hash space is split into ``2**depth`` chunks; None: chosen
    from one verified probe chunk of the target state (:mod:`.depthprobe`: chunks of at
    most ~256 KiB, 2**8 to 2**20 of them)."""
    batch: int = 16
    """Chunks per STATE_CHUNK request."""
    window: int = 2
    """STATE_CHUNK requests open at once per peer: with 2 the peer builds the next batch
    while this client checks the last one (with 1 the two sides take turns)."""
    stall_timeout: float = 5.0
    """A request stream with no whole record for this long is cancelled (TIMEOUT)."""
    push_timeout: float = 10.0
    """A BLOCK_PUSH / MEMPOOL_GOSSIP stream open this long without FIN is stopped."""
    subscribe: int = SUB_BLOCKS | SUB_MEMPOOL | SUB_VOTES
    """Pushes asked of every peer."""
    chain_id: int | None = None
    """Chain id blocks must carry (None: any)."""
