"""The mempool and the tx receive pipeline (LP-0202 §1, stages 1-5), sans-IO.

* :class:`Mempool` -- fee-ranked, nonce-ordered, bounded pool of zero-copy
  :class:`~zapstack.zap.TxView` pointers; ``drop`` is its O(log N) idempotent
  unwind primitive.
* :class:`TxReceiver` (``receive``) -- one handler per tx-submit stream feeding
  :class:`~zapstack.zap.IngressMachine` as bytes arrive, answering actions
  (``actions``: reject the stream, wait for credit, resume, verify, admitted,
  rejected).
* :class:`AdmissionController` -- the bounded in-flight working set.
* :class:`Reputation`, :class:`PipelineStats`.
* ``zapstack.mempool.handler.TxSubmitService`` (not re-exported: it imports the
  transport) -- the glue that serves ``StreamType.TX_SUBMIT`` on a transport
  session.

Layering: imports ``zap`` and ``errors`` (``handler`` also the transport's
handler types); never does IO.  Concurrency: the receiver and admission
controller are owned by one thread (the driver); the mempool locks internally
so its unwind (``drop``/``remove``) may come from any thread; views handed out
are immutable and may be shared with any thread.  Format and rules:
``docs/formats/mempool.md``.
"""

from zapstack.mempool.actions import (
    Action,
    RejectStream,
    Resume,
    TxAdmitted,
    TxRejected,
    VerifyRequest,
    WaitForCredit,
    verify_batch,
    verify_tx,
)
from zapstack.mempool.admission import AdmissionController
from zapstack.mempool.answer import ANSWER_SIZE, SubmitAnswer, decode_answer, encode_answer
from zapstack.mempool.pool import Admitted, Mempool, NonceFloor
from zapstack.mempool.receive import TxReceiver
from zapstack.mempool.reputation import Reputation
from zapstack.mempool.stats import PipelineStats

__all__ = [
    "ANSWER_SIZE",
    "Action",
    "AdmissionController",
    "Admitted",
    "Mempool",
    "NonceFloor",
    "PipelineStats",
    "RejectStream",
    "Reputation",
    "Resume",
    "SubmitAnswer",
    "TxAdmitted",
    "TxReceiver",
    "TxRejected",
    "VerifyRequest",
    "WaitForCredit",
    "decode_answer",
    "encode_answer",
    "verify_batch",
    "verify_tx",
]
