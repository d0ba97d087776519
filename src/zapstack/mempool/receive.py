"""The tx receive pipeline (LP-0202 §1), all five stages, sans-IO.

Theory of operation
-------------------
One :class:`TxReceiver` serves every tx-submit stream of every peer.  The
driver (the transport adapter, or an in-memory loop in tests and benches)
reports stream events and gets back *actions*, frozen values it must carry
out; the receiver never does IO and never reads a clock (``now`` is passed in).

=====================  ============================================  ===========================
driver calls           when                                          may answer
=====================  ============================================  ===========================
``stream_opened``      a peer opened a TX_SUBMIT stream              WaitForCredit
``data_received``      bytes arrived on it (any fragmentation)       RejectStream, WaitForCredit,
                                                                     Resume (of other streams)
``stream_ended``       FIN                                           TxAdmitted, TxRejected,
                                                                     RejectStream, VerifyRequest
``verified``           a deferred signature check finished           TxAdmitted, TxRejected,
                                                                     RejectStream
``stream_reset``       the peer reset the stream (RESET_STREAM)      Resume
``peer_closed``        the peer's connection is gone                 Resume
``tick``               periodically                                  RejectStream(TIMEOUT)
=====================  ============================================  ===========================

Per stream: a fresh :class:`~zapstack.zap.IngressMachine` runs stages 1-4 as
the bytes stream in (magic, kind, header, body offsets and, inline, the
signature); at FIN the accepted :class:`~zapstack.zap.TxView` goes to stage 5,
:meth:`Mempool.insert <zapstack.mempool.Mempool.insert>` (a pointer insert).

* A stage 1-4 verdict answers :class:`RejectStream` (the driver stops the
  stream with ``code``: QUIC STOP_SENDING / the transport's ``Reject``), drops
  the partial buffer, returns its credit and decrements the peer's
  reputation.  The peer's other streams are untouched.
* A stage 5 verdict answers :class:`TxAdmitted` or :class:`TxRejected`.
* Backpressure: the stream's buffer slot is taken at open and its declared
  length is reserved once header bytes 8..11 are in (an
  :class:`~zapstack.mempool.admission.AdmissionController`).  When credit is
  short the answer is :class:`WaitForCredit`: the driver must deliver nothing
  more on that stream (not even FIN) until a :class:`Resume` names it.
* Pushback before the pool is full: once the pool holds ``high_water`` of its
  ``max_txs`` or ``max_bytes``, or ``max_pending`` txs (the driver sets it to
  what the chain finalizes in a few seconds), stage 5 answers :class:`TxRejected`
  ``RATE_LIMITED`` (retry later) instead of inserting; :meth:`TxReceiver.credit`
  (the room left below both, at most ``CREDIT_MAX``) rides on every
  answer (``mempool.answer``) so submitters slow down before that.
* ``defer_verification=True``: ingress skips the signature; at FIN the
  receiver first runs the cheap checks (pushback, then the pool's lookups,
  :meth:`Mempool.precheck <zapstack.mempool.Mempool.precheck>`) and answers a
  tx they refuse at once, without a signature check; otherwise it answers
  :class:`VerifyRequest` and the driver runs :func:`verify_batch` wherever it
  likes (a thread pool: ``cryptography`` releases the GIL) and reports each
  result with :meth:`TxReceiver.verified`, which inserts (stage 5, no second
  pushback: the check is paid for).  Requests reported in the order they were
  made are admitted in that order.  A tx whose id the pool already holds skips
  the signature check and goes straight to stage 5 (which rejects it ``DUPLICATE``).

After a stream's terminal action (reject, admit, reset) further input for it
is ignored, so a transport racing a reset cannot confuse the receiver.  Every
terminal path is idempotent.  Not thread-safe: one driver thread.
"""

from __future__ import annotations

import enum
import struct

from zapstack.errors import InvalidTx, LocalProtocolError, Stage, WireCode
from zapstack.mempool.actions import (
    Action,
    PeerId,
    RejectStream,
    Resume,
    TxAdmitted,
    TxRejected,
    VerifyRequest,
    WaitForCredit,
)
from zapstack.mempool.admission import AdmissionController
from zapstack.mempool.pool import Mempool
from zapstack.mempool.reputation import Reputation
from zapstack.zap.events import END, NEED_DATA, FrameAccepted, FrameRejected
from zapstack.zap.ingress import IngressMachine
from zapstack.zap.schema import MAX_TX_SIZE, TX_SCHEMAS
from zapstack.zap.views import TxView

__all__ = ["CREDIT_MAX", "TxReceiver"]

CREDIT_MAX = 64
"""Most credit one answer grants (one connection's TX_SUBMIT stream window)."""

_LEN = struct.Struct("<I")
_LENGTH_END = 12  # header bytes 8..11 hold the frame's total length
_STAGE_BY_BYTES: tuple[tuple[int, Stage], ...] = (
    (4, Stage.MAGIC),
    (5, Stage.SCHEMA),
    (21, Stage.HEADER),
)
"""Bytes received below the bound -> the stage a stalled stream is stuck in (else BODY)."""


def _stalled_stage(machine: IngressMachine) -> Stage:
    if machine.finished:
        return Stage.NONE
    n = machine.bytes_received
    return next((stage for bound, stage in _STAGE_BY_BYTES if n < bound), Stage.BODY)


class _Phase(enum.Enum):
    WAIT_SLOT = "wait-slot"
    OPEN = "open"
    WAIT_BYTES = "wait-bytes"
    VERIFYING = "verifying"


class _Stream:
    __slots__ = ("head", "key", "last", "machine", "phase", "reserved", "view")

    def __init__(self, key: tuple[PeerId, int], machine: IngressMachine, now: float) -> None:
        self.key = key
        self.machine = machine
        self.head = bytearray()  # header bytes 0..11 only, to read the declared length
        self.last = now
        self.phase = _Phase.OPEN
        self.reserved = False
        self.view: TxView | None = None


class TxReceiver:
    """Per-stream tx ingress (stages 1-4) feeding one mempool (stage 5)."""

    def __init__(
        self,
        pool: Mempool,
        *,
        admission: AdmissionController[tuple[PeerId, int]] | None = None,
        reputation: Reputation | None = None,
        chain_id: int | None = None,
        defer_verification: bool = False,
        stream_timeout: float = 30.0,
        high_water: float = 0.75,
        max_pending: int | None = None,
    ) -> None:
        self.pool = pool
        self.stats = pool.stats
        self.admission: AdmissionController[tuple[PeerId, int]] = (
            admission if admission is not None else AdmissionController()
        )
        self.reputation = reputation if reputation is not None else Reputation()
        self.chain_id = chain_id
        self.defer_verification = defer_verification
        self.stream_timeout = stream_timeout
        self.high_water = high_water
        """Fraction of the pool's capacity past which submits are pushed back."""
        self.max_pending = max_pending
        """Pooled txs past which submits are pushed back (``None``: only the high water)."""
        self._streams: dict[tuple[PeerId, int], _Stream] = {}
        self._by_peer: dict[PeerId, set[int]] = {}
        self._clock = float(
            "-inf"
        )  # latest ``now`` seen: a resumed stream's idle clock starts here

    def credit(self) -> int:
        """Submissions invited now: the pool's room below its high water (<= CREDIT_MAX)."""
        pool = self.pool
        room = min(
            int(pool.max_txs * self.high_water) - len(pool),
            (int(pool.max_bytes * self.high_water) - pool.bytes_used) // MAX_TX_SIZE,
        )
        if self.max_pending is not None:
            room = min(room, self.max_pending - len(pool))
        return max(0, min(CREDIT_MAX, room))

    @property
    def in_flight(self) -> int:
        """Streams not yet finished (receiving, waiting or verifying)."""
        return len(self._streams)

    # -- driver calls ------------------------------------------------------------
    def stream_opened(self, peer: PeerId, stream_id: int, now: float = 0.0) -> list[Action]:
        """A peer opened a tx-submit stream."""
        self._clock = max(self._clock, now)
        key = (peer, stream_id)
        if key in self._streams:
            raise LocalProtocolError(f"stream {stream_id} of {peer!r} opened twice")
        machine = IngressMachine(
            TX_SCHEMAS, chain_id=self.chain_id, verify_signatures=not self.defer_verification
        )
        s = _Stream(key, machine, now)
        self._streams[key] = s
        self._by_peer.setdefault(peer, set()).add(stream_id)
        self.stats.streams_opened += 1
        if self.admission.open(key):
            return []
        s.phase = _Phase.WAIT_SLOT
        self.stats.waits += 1
        return [WaitForCredit(peer, stream_id)]

    def data_received(
        self, peer: PeerId, stream_id: int, data: bytes | memoryview, now: float = 0.0
    ) -> list[Action]:
        """Bytes arrived on a stream (any split); stages 1-4 run as they land."""
        self._clock = max(self._clock, now)
        s = self._live(peer, stream_id)
        if s is None or not data:
            return []
        s.last = now
        if len(s.head) < _LENGTH_END:
            s.head += data[: _LENGTH_END - len(s.head)]
        s.machine.receive_data(data)
        out = self._drain(s)
        if out or s.reserved or len(s.head) < _LENGTH_END:
            return out
        s.reserved = True
        if self.admission.reserve(s.key, _LEN.unpack_from(s.head, 8)[0]):
            return []
        s.phase = _Phase.WAIT_BYTES
        self.stats.waits += 1
        return [WaitForCredit(peer, stream_id)]

    def stream_ended(self, peer: PeerId, stream_id: int, now: float = 0.0) -> list[Action]:
        """The peer finished the stream (FIN): the buffer is complete, go to stage 5."""
        self._clock = max(self._clock, now)
        s = self._live(peer, stream_id)
        if s is None:
            return []
        s.last = now
        s.machine.end_of_stream()
        out = self._drain(s)
        if out:
            return out
        view = s.view
        assert view is not None, "ingress ended without a verdict"
        if self.defer_verification and view.tx_id not in self.pool:
            refused = self._screen(s, view)
            if refused:
                return refused
            s.phase = _Phase.VERIFYING
            return [VerifyRequest(peer, stream_id, view)]
        return self._stage5(s, view)

    def verified(self, peer: PeerId, stream_id: int, ok: bool) -> list[Action]:
        """Result of a :class:`VerifyRequest`.  Ignored if the stream is gone."""
        s = self._streams.get((peer, stream_id))
        if s is None or s.phase is not _Phase.VERIFYING or s.view is None:
            return []
        if not ok:
            offset = len(s.view) - 1
            reason = "signature does not verify"
            return self._reject(s, Stage.BODY, WireCode.BAD_SIGNATURE, offset, reason)
        return self._stage5(s, s.view, push_back=False)

    def stream_reset(self, peer: PeerId, stream_id: int) -> list[Action]:
        """The peer reset the stream: drop the partial buffer, return its credit."""
        s = self._streams.get((peer, stream_id))
        if s is None:
            return []
        self.stats.peer_resets += 1
        return self._finish(s)

    def peer_closed(self, peer: PeerId) -> list[Action]:
        """The peer's connection ended: every stream of it ends (others are untouched)."""
        out: list[Action] = []
        for sid in sorted(self._by_peer.get(peer, ())):
            out += self.stream_reset(peer, sid)
        return out

    def tick(self, now: float) -> list[Action]:
        """Time out receiving streams idle for longer than ``stream_timeout``.

        Streams waiting for credit or verification are never timed out: the
        wait is ours, not the peer's.  A resumed stream's idle clock restarts at
        the latest ``now`` the receiver has seen.
        """
        self._clock = max(self._clock, now)
        out: list[Action] = []
        stale = [
            s
            for s in self._streams.values()
            if s.phase is _Phase.OPEN and now - s.last > self.stream_timeout
        ]
        for s in stale:
            n = s.machine.bytes_received
            out += self._reject(s, _stalled_stage(s.machine), WireCode.TIMEOUT, n, "stream stalled")
        return out

    # -- internals ---------------------------------------------------------------
    def _live(self, peer: PeerId, stream_id: int) -> _Stream | None:
        s = self._streams.get((peer, stream_id))
        if s is not None and s.phase is not _Phase.OPEN:
            raise LocalProtocolError(
                f"input on stream {stream_id} of {peer!r} while it is {s.phase.value}"
            )
        return s

    def _drain(self, s: _Stream) -> list[Action]:
        while True:
            ev = s.machine.next_event()
            if ev is NEED_DATA or ev is END:
                return []
            if isinstance(ev, FrameAccepted):
                assert isinstance(ev.view, TxView)
                s.view = ev.view
            elif isinstance(ev, FrameRejected):
                return self._reject(s, ev.stage, ev.code, ev.offset, ev.reason)

    def _reject(
        self, s: _Stream, stage: Stage, code: WireCode, offset: int, reason: str
    ) -> list[Action]:
        peer, sid = s.key
        self.stats.reject(stage, code)
        self.reputation.penalize(peer, code)
        return [RejectStream(peer, sid, stage, code, offset, reason), *self._finish(s)]

    def _pushback(self, s: _Stream, view: TxView) -> list[Action]:
        self.stats.pushed_back += 1
        reason = "pool past its pushback bound: retry later"
        floor = self.pool.nonce_floor(view.sender)
        peer, sid = s.key
        action = TxRejected(peer, sid, view.tx_id, WireCode.RATE_LIMITED, reason, floor)
        return [action, *self._finish(s)]

    def _refuse(self, s: _Stream, view: TxView, exc: InvalidTx) -> list[Action]:
        peer, sid = s.key
        self.reputation.penalize(peer, exc.code)
        floor = self.pool.nonce_floor(view.sender)
        return [TxRejected(peer, sid, view.tx_id, exc.code, str(exc), floor), *self._finish(s)]

    def _screen(self, s: _Stream, view: TxView) -> list[Action]:
        """The cheap checks before a deferred signature check: pushback, rules 1-7."""
        if self.credit() == 0:
            return self._pushback(s, view)
        try:
            self.pool.precheck(view)
        except InvalidTx as exc:
            return self._refuse(s, view, exc)
        return []

    def _stage5(self, s: _Stream, view: TxView, push_back: bool = True) -> list[Action]:
        if push_back and self.credit() == 0 and view.tx_id not in self.pool:
            return self._pushback(s, view)
        try:
            admitted = self.pool.insert(view)
        except InvalidTx as exc:
            return self._refuse(s, view, exc)
        peer, sid = s.key
        return [TxAdmitted(peer, sid, admitted, admitted.account_nonce), *self._finish(s)]

    def _finish(self, s: _Stream) -> list[Action]:
        """Forget the stream and return its credit; resume whoever it unblocks."""
        peer, sid = s.key
        del self._streams[s.key]
        sids = self._by_peer[peer]
        sids.discard(sid)
        if not sids:
            del self._by_peer[peer]
        out: list[Action] = []
        for key in self.admission.release(s.key):
            w = self._streams[key]
            w.phase = _Phase.OPEN
            w.last = max(w.last, self._clock)
            self.stats.resumes += 1
            out.append(Resume(w.key[0], w.key[1]))
        return out
