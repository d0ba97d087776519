"""Phase 1, propose: the proposer builds its block and opens the round it aggregates.

Contract
--------
:func:`propose` (called from the engine's timer when this validator is the
(height, round) proposer and the block interval has passed) selects txs from
the mempool, runs them on a speculative ZapDB snapshot in a worker thread,
drops the txs that fail for good with their senders' later nonces (not
those whose nonce is merely ahead),
builds and signs the block frame with the post-state root, opens a
:class:`~zapstack.consensus.round.ConsensusRound` as the round's aggregator
and broadcasts PROPOSAL.  The snapshot is always discarded (``finally``); a
block built while the chain moved on (another height, round or head) is
dropped without a round.

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

import hashlib
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zapstack.consensus.round import ConsensusRound
from zapstack.node.engine.state import Aggregation
from zapstack.node.wire import MsgType
from zapstack.verify.executor import execute_candidates
from zapstack.zap.frames import build_block

if TYPE_CHECKING:
    from zapstack.node.engine.core import Consensus

__all__ = [
    "GROW_TXS",
    "MAX_BLOCK_BYTES",
    "MAX_BLOCK_TXS",
    "MIN_BLOCK_TXS",
    "BlockBudget",
    "propose",
]

MAX_BLOCK_TXS = 2000
"""Txs a proposer puts in one block at most."""
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


async def propose(c: Consensus, height: int, round_: int) -> None:
    """Build, sign and broadcast our block for (height, round_); aggregate its votes."""
    budget = _BUDGETS.setdefault(c, BlockBudget())
    txs = c.mempool.select(budget.next(c.stats["round_changes"], height), MAX_BLOCK_BYTES)
    parent = c.executor.head
    proposer_acct = hashlib.sha256(c.keys.proposer.public_key).digest()

    def build() -> bytes:
        branch = c.executor._db.snapshot()
        try:
            included, failed = execute_candidates(branch, txs, proposer_acct)
            root = branch.root()
        finally:
            branch.discard()
        for f in failed:  # failed for good: it and the sender's later nonces go
            if not f.nonce_ahead:
                c.mempool.drop_with_successors(f.tx_id)
        return build_block(
            c.keys.proposer,
            height=height,
            parent=parent,
            timestamp_ms=c.io.wall_ms(),
            state_root=root,
            txs=included,
            chain_id=c.g.chain_id,
        )

    block = await c.io.run(build)
    if (height, round_) != (c.height, c.round) or parent != c.executor.head:
        return  # the chain moved on while we built
    cr = ConsensusRound(c.g.vset, c.g.policy, c.g.chain_id, height)
    cr.round = round_
    now = c.io.now_ms()
    cr.propose(block, now)
    c.aggs[(height, round_)] = Aggregation(cr, block, now)
    c.stats["proposed"] += 1
    c.io.broadcast(MsgType.PROPOSAL, height, round_, block)
