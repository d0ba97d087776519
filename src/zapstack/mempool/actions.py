"""The receive pipeline's vocabulary: the actions a driver carries out, and signature checks.

:class:`~zapstack.mempool.receive.TxReceiver` answers every driver call with a
list of these frozen values (``Action``); the driver executes them in order
(stop a stream, pause or resume reading it, run a deferred signature check,
report stage 5's verdict).  :func:`verify_tx` and :func:`verify_batch` are the
deferred check (pure functions, safe on any thread: ``cryptography`` releases
the GIL).  Sans-IO, no state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zapstack.errors import Stage, WireCode
from zapstack.mempool.pool import Admitted
from zapstack.zap.sigschemes import verify_signature
from zapstack.zap.views import TxView

__all__ = [
    "Action",
    "PeerId",
    "RejectStream",
    "Resume",
    "TxAdmitted",
    "TxRejected",
    "VerifyRequest",
    "WaitForCredit",
    "verify_batch",
    "verify_tx",
]

PeerId = bytes
"""A peer's node id."""


@dataclass(frozen=True, slots=True)
class RejectStream:
    """Stages 1-4 proved the frame bad (or it stalled): stop this stream with ``code``."""

    peer: PeerId
    """The peer that sent it."""
    stream_id: int
    """QUIC stream id."""
    stage: Stage
    """Stage that caught it (``NONE`` for a timeout after the frame completed)."""
    code: WireCode
    """Application error code for STOP_SENDING / RESET_STREAM."""
    offset: int
    """Byte that proved it bad (bytes received, for a timeout)."""
    reason: str
    """Human-readable explanation."""


@dataclass(frozen=True, slots=True)
class WaitForCredit:
    """Stop reading this stream until a :class:`Resume` names it (backpressure)."""

    peer: PeerId
    """The stream's peer."""
    stream_id: int
    """QUIC stream id."""


@dataclass(frozen=True, slots=True)
class Resume:
    """Credit was granted: deliver this stream's pending bytes again."""

    peer: PeerId
    """The stream's peer."""
    stream_id: int
    """QUIC stream id."""


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    """Check this view's signature (off-thread) and report it with ``verified``."""

    peer: PeerId
    """The stream's peer."""
    stream_id: int
    """QUIC stream id."""
    view: TxView
    """The complete, structurally valid tx (zero-copy view)."""


@dataclass(frozen=True, slots=True)
class TxAdmitted:
    """Stage 5 passed: the tx is in the mempool."""

    peer: PeerId
    """The peer that sent it."""
    stream_id: int
    """QUIC stream id."""
    result: Admitted
    """Its id, and what it evicted or replaced."""
    account_nonce: int = 0
    """The sender's committed account nonce (what the pool's nonce rules start from)."""


@dataclass(frozen=True, slots=True)
class TxRejected:
    """Stage 5 refused a well-formed tx (the stream itself had completed)."""

    peer: PeerId
    """The peer that sent it."""
    stream_id: int
    """QUIC stream id."""
    tx_id: bytes
    """The refused tx's id."""
    code: WireCode
    """The pool's reject code (``pool.py`` rules 1-8), or RATE_LIMITED (pushback)."""
    reason: str
    """Human-readable explanation."""
    account_nonce: int = 0
    """The sender's committed account nonce (what the pool's nonce rules start from)."""


Action = RejectStream | WaitForCredit | Resume | VerifyRequest | TxAdmitted | TxRejected


def verify_tx(view: TxView) -> bool:
    """Whether ``view``'s signature verifies over its transcript digest.  Never raises."""
    return verify_signature(view.scheme, view.pubkey, view.digest, view.signature)


def verify_batch(views: Sequence[TxView]) -> list[bool]:
    """:func:`verify_tx` over a batch (one thread-pool task per batch, not per tx)."""
    return [verify_tx(v) for v in views]
