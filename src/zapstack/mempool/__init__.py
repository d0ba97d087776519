"""The mempool and the tx receive pipeline (LP-0202 §1, stages 1-5), sans-IO.

* :class:`Mempool` -- fee-ranked, nonce-ordered, bounded pool of zero-copy
  :class:`~zapstack.zap.TxView` pointers; ``drop`` is its O(log N) idempotent
  unwind primitive.
* :class:`TxReceiver` -- one handler per tx-submit stream feeding
  :class:`~zapstack.zap.IngressMachine` as bytes arrive, answering actions
  (reject the stream, wait for credit, resume, verify, admitted, rejected).
* :class:`AdmissionController` -- the bounded in-flight working set.
* :class:`Reputation`, :class:`PipelineStats`.

Layering: imports ``zap`` and ``errors`` only; never does IO.  Concurrency:
every object here is owned by one thread (the driver); views handed out are
immutable and may be shared with any thread.
"""

from zapstack.mempool.admission import AdmissionController
from zapstack.mempool.pool import Admitted, Mempool, NonceFloor
from zapstack.mempool.receive import (
    Action,
    RejectStream,
    Resume,
    TxAdmitted,
    TxReceiver,
    TxRejected,
    VerifyRequest,
    WaitForCredit,
    verify_batch,
    verify_tx,
)
from zapstack.mempool.reputation import Reputation
from zapstack.mempool.stats import PipelineStats

__all__ = [
    "Action",
    "AdmissionController",
    "Admitted",
    "Mempool",
    "NonceFloor",
    "PipelineStats",
    "RejectStream",
    "Reputation",
    "Resume",
    "TxAdmitted",
    "TxReceiver",
    "TxRejected",
    "VerifyRequest",
    "WaitForCredit",
    "verify_batch",
    "verify_tx",
]
