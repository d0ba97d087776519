"""The consensus engine: a validator's duties over one height at a time.

Theory of operation
-------------------
Heights are decided one after another; round ``r`` of height ``h`` has the
proposer ``genesis.proposer_of(h, r)`` (round robin).  For each (h, r):

1. **Propose** (:mod:`.propose`, proposer only): select txs from the mempool,
   run them on a speculative ZapDB branch leaving failing ones out, build and
   sign the block frame with the post-state root, open a
   :class:`~zapstack.consensus.round.ConsensusRound` as the round's
   aggregator and broadcast PROPOSAL.
2. **Vote** (:mod:`.vote`, every validator, on PROPOSAL): verify and execute
   the block on a speculative branch (``BlockExecutor.receive``: parallel
   verify, serial nonce/balance, root check -- up to 3 candidates per
   height); then sign the four legs over the cert digests *in order of their
   speed*: BLS and Pulsar shares at once, the Corona round-1 commitment, then
   the Magnetar signature.  Each share is sent to the aggregator as soon as
   it exists.
3. **Aggregate** (:mod:`.aggregate`, proposer): feed shares into the round;
   when t Corona commitments are in, send CORONA_SIGNERS to the chosen
   signers, who answer with round-2 responses.  As soon as the observed tier
   meets the policy Mode the block is final: FINAL (cert + block) goes to
   everyone.  Legs that arrive later upgrade the cert (CERT_UPGRADE) until
   the deadline; a leg that never reaches threshold leaves its field empty --
   the cert never waits.
4. **Commit** (:mod:`.commit`, everyone, on FINAL): verify the cert against
   the validator set and policy, store block + cert durably, commit the
   speculative branch (``BlockExecutor.finalize``), drop the block's txs from
   the mempool, advance to h + 1.
5. **Round change** (:mod:`.core`): no FINAL within the round timeout ->
   abandon the round (aggregator: ``ConsensusRound.abandon``) and move to
   r + 1 with the next proposer.  Candidates stay on their branches
   (speculative width 3); a proposal that finds all three slots taken frees
   them (a newer round supersedes older speculation; an older block that
   still finalizes is re-executed in ``commit``), and each failed round
   lengthens the next round's timeout.

:class:`Consensus` (:mod:`.core`) holds the state and dispatches; the phase
modules hold the decision logic; :mod:`.state` holds the shared records.  IO
(sending, threads, clock) is injected through :class:`Io` so tests drive the
engine directly, without sockets.
"""

from zapstack.node.engine.core import Consensus
from zapstack.node.engine.propose import MAX_BLOCK_BYTES, MAX_BLOCK_TXS
from zapstack.node.engine.state import Aggregation, HeightRecord, Io

__all__ = ["MAX_BLOCK_BYTES", "MAX_BLOCK_TXS", "Aggregation", "Consensus", "HeightRecord", "Io"]
