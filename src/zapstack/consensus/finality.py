"""The finality ledger: a block is final only with a cert that satisfies the policy.

Contract
--------
* :meth:`FinalityLedger.accept` verifies the cert against the validator set
  and the block bytes (:func:`~zapstack.consensus.cert.verify_cert`) and checks
  that its present legs satisfy the chain's CertPolicy (Mode, or Fallback --
  the tier a cert is published at when the deadline passes).
* Heights are finalized in order, each exactly once.  A second, *different*
  block at a finalized height is rejected with :class:`InvalidBlock` whatever
  its cert says -- there is no code path that replaces a finalized block (no
  reorg).  Re-accepting the same block is a no-op that returns the record.
* Pure in-memory state; callers persist records through ZapDB.
"""

from __future__ import annotations

from dataclasses import dataclass

from zapstack.consensus.cert import QuasarCert, verify_cert
from zapstack.consensus.digest import block_id
from zapstack.consensus.policy import CertPolicy, Mode, accepted_tier
from zapstack.consensus.validators import ValidatorSet
from zapstack.errors import InvalidBlock, InvalidCert

__all__ = ["FinalityLedger", "FinalizedBlock"]


@dataclass(frozen=True, slots=True)
class FinalizedBlock:
    """One finalized height."""

    height: int
    block_id: bytes
    round: int
    tier: Mode
    """The policy tier the cert satisfied (Mode or Fallback)."""
    cert: QuasarCert


class FinalityLedger:
    """Finalized heights of one chain under one validator set and policy."""

    __slots__ = ("_blocks", "chain_id", "policy", "vset")

    def __init__(self, chain_id: int, vset: ValidatorSet, policy: CertPolicy) -> None:
        self.chain_id = chain_id
        self.vset = vset
        self.policy = policy
        self._blocks: dict[int, FinalizedBlock] = {}

    @property
    def next_height(self) -> int:
        """The lowest height not yet finalized."""
        return len(self._blocks)

    def get(self, height: int) -> FinalizedBlock | None:
        """The finalized record at ``height``, if any."""
        return self._blocks.get(height)

    def accept(self, block_bytes: bytes, cert: QuasarCert) -> FinalizedBlock:
        """Finalize ``block_bytes`` at ``cert.height`` or raise InvalidBlock/InvalidCert."""
        bid = block_id(block_bytes)
        done = self._blocks.get(cert.height)
        if done is not None:
            if done.block_id == bid:
                return done
            raise InvalidBlock(
                f"height {cert.height} is already final with block {done.block_id.hex()[:16]}; "
                f"competing block {bid.hex()[:16]} rejected"
            )
        if cert.height != self.next_height:
            raise InvalidBlock(f"height {cert.height} is not next (next is {self.next_height})")
        if cert.chain_id != self.chain_id:
            raise InvalidCert(f"cert is for chain {cert.chain_id}, not {self.chain_id}")
        verdict = verify_cert(cert, self.vset, block_bytes=block_bytes)
        tier = accepted_tier(self.policy, verdict.present)
        if tier is None:
            legs = ",".join(sorted(leg.label for leg in verdict.present)) or "none"
            raise InvalidCert(
                f"cert legs [{legs}] satisfy neither {self.policy.mode.value} nor the fallback"
            )
        record = FinalizedBlock(cert.height, bid, cert.round, tier, cert)
        self._blocks[cert.height] = record
        return record
