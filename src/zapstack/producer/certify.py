"""The Sign stage's pluggable cert step: ``certify(block_view) -> cert``.

A certifier is any callable taking the proposer-signed :class:`BlockView` and
returning a cert object, or raising: :class:`~zapstack.errors.InvalidBlock`
(with ``tx_index`` when the rejection names a tx -- the proposer drops that tx
and rebuilds without it) or any other :class:`~zapstack.errors.ZapError` (the
block is abandoned, its txs are selected again).  The driver calls it on a
worker thread; an async consensus engine is wired from ``node/`` by wrapping
its coroutine (``asyncio.run_coroutine_threadsafe(...).result()``).

Two local certifiers, named for what they are (neither is a QuasarCert):

* :class:`LocalCertifier` -- each local validator key signs the block's
  transcript digest (Ed25519 or ML-DSA-65, real signatures; the GIL is
  released while signing, so it overlaps with building).
* :class:`ValidatorCertifier` -- first runs the block through a
  :class:`~zapstack.verify.BlockExecutor` (parallel verify, serial phase, root
  check, commit on success) as a validator would, then signs.  This is the
  path by which a bad tx inside a proposed block is caught and named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zapstack.verify.executor import BlockExecutor
from zapstack.zap.sigschemes import Signer
from zapstack.zap.views import BlockView

__all__ = ["Certify", "LocalCert", "LocalCertifier", "ValidatorCertifier"]

Certify = Callable[[BlockView], object]
"""``certify(block_view) -> cert``; raises to reject (see module doc)."""


@dataclass(frozen=True, slots=True)
class LocalCert:
    """Signatures of local validator keys over one block's transcript digest."""

    block_id: bytes
    """sha256 of the block."""
    signatures: tuple[bytes, ...]
    """One per validator key, in key order."""


class LocalCertifier:
    """Every local key signs the block transcript digest."""

    def __init__(self, signers: Sequence[Signer]) -> None:
        self.signers = tuple(signers)
        """The local validator keys."""

    def __call__(self, block: BlockView) -> LocalCert:
        digest = block.digest
        return LocalCert(block.block_id, tuple(s.sign(digest) for s in self.signers))


class ValidatorCertifier:
    """Validate and commit the block as a validator, then sign it."""

    def __init__(self, executor: BlockExecutor, signers: Sequence[Signer] = ()) -> None:
        self.executor = executor
        """The local validator's chain (commits each finalized block)."""
        self._sign = LocalCertifier(signers)

    def __call__(self, block: BlockView) -> LocalCert:
        candidate = self.executor.receive(block)
        cert = self._sign(block)
        self.executor.finalize(candidate.receipt.block_id)
        return cert
