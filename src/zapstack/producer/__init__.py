"""The block production pipeline (LP-0202 §2): Select -> Build -> Sign, overlapped.

* :mod:`~zapstack.producer.pipeline` -- the sans-IO scheduler (start rules,
  reservations, events); no threads, no store.
* :mod:`~zapstack.producer.build` -- the Build stage's state: one speculative
  ZapDB branch holding every in-flight block, savepoints per block.
* :mod:`~zapstack.producer.certify` -- the pluggable ``certify(block_view)``
  of the Sign stage, and two local certifiers.
* :mod:`~zapstack.producer.driver` -- the thin threaded driver.

Unwind: a block rejected at Sign is abandoned with every younger block
(``BuildChain.abandon`` rolls the branch back to its savepoint, O(diff)); the
tx the rejection named is dropped from the mempool; the others are selected
again, so the proposer rebuilds without it next round.
"""

from zapstack.producer.build import BuildChain, BuildStore, Built
from zapstack.producer.certify import Certify, LocalCert, LocalCertifier, ValidatorCertifier
from zapstack.producer.driver import Finalized, Producer, TxSource
from zapstack.producer.pipeline import (
    BlockAbandoned,
    BlockFinalized,
    Event,
    Pipeline,
    StageName,
    Task,
    TxDropped,
)

__all__ = [
    "BlockAbandoned",
    "BlockFinalized",
    "BuildChain",
    "BuildStore",
    "Built",
    "Certify",
    "Event",
    "Finalized",
    "LocalCert",
    "LocalCertifier",
    "Pipeline",
    "Producer",
    "StageName",
    "Task",
    "TxDropped",
    "TxSource",
    "ValidatorCertifier",
]
