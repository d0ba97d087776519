"""Counters of the tx receive pipeline, kept next to the code that bumps them.

Contract
--------
One :class:`PipelineStats` is shared by a :class:`~zapstack.mempool.Mempool`
and the :class:`~zapstack.mempool.TxReceiver` feeding it.  Fields are plain
integers (and one ``Counter`` keyed by ``(stage, code)``) so that ``node/`` can
export them to Prometheus as counters without translation.  Nothing here is
thread-safe: like the rest of the sans-IO core, it is touched from one thread.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from zapstack.errors import Stage, WireCode

__all__ = ["PipelineStats"]


@dataclass(slots=True)
class PipelineStats:
    """Monotonic counters of the receive pipeline and the mempool."""

    streams_opened: int = 0
    """Tx streams handed to the receiver."""
    admitted: int = 0
    """Txs inserted into the mempool (stage 5 passed)."""
    rejected: Counter[tuple[Stage, WireCode]] = field(default_factory=Counter)
    """Rejections by (stage, wire code), stages 1-5."""
    evicted: int = 0
    """Txs evicted by a higher-fee tx when the pool was full."""
    replaced: int = 0
    """Txs replaced by a same-sender, same-nonce tx paying a higher fee."""
    removed: int = 0
    """Txs dropped by ``remove``/``drop`` (block commit or unwind)."""
    pruned: int = 0
    """Txs dropped because their nonce fell below the account's committed nonce."""
    waits: int = 0
    """Backpressure answers: a stream told to wait for buffer or byte credit."""
    resumes: int = 0
    """Streams resumed after credit was released."""
    peer_resets: int = 0
    """Streams the peer reset (or lost with its connection) before completion."""
    pushed_back: int = 0
    """Submits answered RATE_LIMITED because the pool was past its high water."""

    def reject(self, stage: Stage, code: WireCode) -> None:
        """Count one rejection."""
        self.rejected[(stage, code)] += 1

    def rejects_by_stage(self) -> dict[Stage, int]:
        """Total rejections per stage (stages with none are omitted)."""
        out: dict[Stage, int] = {}
        for (stage, _), n in self.rejected.items():
            out[stage] = out.get(stage, 0) + n
        return out

    @property
    def rejected_total(self) -> int:
        """All rejections, every stage."""
        return sum(self.rejected.values())
