"""Phase 1, propose: the proposer builds its block and opens the round it aggregates.

Contract
--------
:func:`propose` (called from the engine's timer when this validator is the
(height, round) proposer and the block interval has passed) takes the block
pre-built for it (:mod:`.prebuild`), if any, or else builds it now:
:func:`build` selects txs from the mempool, runs them on a speculative ZapDB
branch with the producer's Build stage (:class:`~zapstack.producer.BuildChain`:
failing txs left out, post-state root, block frame laid out and signed) in a
worker thread, and always discards the branch.  Txs that failed for good are
dropped from the mempool with their senders' later nonces (not those whose
nonce is merely ahead).  Then it opens a
:class:`~zapstack.consensus.round.ConsensusRound` as the round's aggregator
and broadcasts PROPOSAL.  A block built while the chain moved on (another
height, round or head) is dropped without a round.

Block size under overload: a block too large to verify, execute and certify
before the round deadline fails its round and the next proposer tries again,
so an overloaded devnet that always fills its blocks stalls for good.  Each
proposer bounds its blocks with a :class:`BlockBudget` (additive increase,
multiplicative decrease): at each proposal, if any round changed since its
previous one the bound halves (not below :data:`MIN_BLOCK_TXS`); otherwise it
grows by :data:`GROW_TXS` per height finalized since (up to
:data:`MAX_BLOCK_TXS`).  Local state only; every validator still checks every
block against the same rules.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zapstack.consensus.round import ConsensusRound
from zapstack.node.engine.state import Aggregation
from zapstack.node.wire import MsgType
from zapstack.producer.build import BuildChain, BuildStore
from zapstack.verify.executor import TxFailure

if TYPE_CHECKING:
    from zapstack.node.engine.core import Consensus

__all__ = [
    "GROW_TXS",
    "MAX_BLOCK_BYTES",
    "MAX_BLOCK_TXS",
    "MIN_BLOCK_TXS",
    "BlockBudget",
    "Proposal",
    "budget",
    "build",
    "build_chain",
    "propose",
]

MAX_BLOCK_TXS = 4000
"""Txs a proposer puts in one block at most.  2,000 bound the devnet at 4,000 tx/s offered:
when a height took ~2 s under load, blocks filled to the cap (13 of 162 heights in one
run) and throughput fell to cap / height time; the AIMD budget still halves it on a
failed round."""
MAX_BLOCK_BYTES = 4 * 1024 * 1024
"""Payload bytes a proposer puts in one block at most."""
MIN_BLOCK_TXS = 125
"""The budget never halves below this."""
GROW_TXS = 100
"""Budget regained per height finalized without a round change."""


@dataclass(slots=True)
class BlockBudget:
    """One proposer's bound on its blocks' tx count (AIMD, see the module docstring)."""

    size: int = MAX_BLOCK_TXS
    """The current bound."""
    round_changes: int = 0
    """Round changes counted at the previous proposal."""
    height: int = 0
    """Height of the previous proposal."""

    def next(self, round_changes: int, height: int) -> int:
        """The bound for a proposal at ``height``, after ``round_changes`` round changes."""
        if round_changes > self.round_changes:
            self.size = max(MIN_BLOCK_TXS, self.size // 2)
        else:
            grown = self.size + GROW_TXS * max(0, height - self.height)
            self.size = min(MAX_BLOCK_TXS, grown)
        self.round_changes, self.height = round_changes, height
        return self.size


_BUDGETS: weakref.WeakKeyDictionary[Consensus, BlockBudget] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Proposal:
    """A block this proposer built and signed, not yet proposed."""

    height: int
    """Its height."""
    parent: bytes
    """The block id it builds on."""
    block: bytes
    """The signed block frame."""
    failures: tuple[TxFailure, ...]
    """Selected txs the build left out (rolled back)."""


def budget(c: Consensus, height: int) -> int:
    """Our tx bound for a block at ``height`` (:class:`BlockBudget`, one per engine)."""
    return _BUDGETS.setdefault(c, BlockBudget()).next(c.stats["round_changes"], height)


def build_chain(c: Consensus, store: BuildStore, height: int, parent: bytes) -> BuildChain:
    """The producer's Build stage for our block at ``height`` on ``store``'s branch."""
    return BuildChain(
        store,
        c.keys.proposer,
        height=height - 1,
        head=parent,
        chain_id=c.g.chain_id,
        now_ms=c.io.wall_ms,
    )


def build(c: Consensus, store: BuildStore, height: int, parent: bytes, n: int) -> Proposal:
    """Select up to ``n`` txs and build the block at ``height`` on ``store``'s branch
    (``parent``'s post-state); the branch is discarded.  Blocking: a worker thread."""
    txs = c.mempool.select(n, MAX_BLOCK_BYTES)
    chain = build_chain(c, store, height, parent)
    try:
        built = chain.build(0, txs)
    finally:
        chain.close()
    return Proposal(height, parent, bytes(built.view.buffer), built.failures)


async def propose(c: Consensus, height: int, round_: int, ready: Proposal | None = None) -> None:
    """Propose ``ready`` (built ahead) or a block built now for (height, round_);
    aggregate its votes."""
    if ready is None:
        n, parent = budget(c, height), c.executor.head
        ready = await c.io.run(build, c, c.executor.store, height, parent, n)
    if (height, round_) != (c.height, c.round) or ready.parent != c.executor.head:
        return  # the chain moved on while we built
    for f in ready.failures:  # failed for good: it and the sender's later nonces go
        if not f.nonce_ahead:
            c.mempool.drop_with_successors(f.tx_id)
    cr = ConsensusRound(c.g.vset, c.g.policy, c.g.chain_id, height)
    cr.round = round_
    now = c.io.now_ms()
    cr.propose(ready.block, now)
    c.aggs[(height, round_)] = Aggregation(cr, ready.block, now)
    c.stats["proposed"] += 1
    c.mark("proposal")
    c.io.broadcast(MsgType.PROPOSAL, height, round_, ready.block)
