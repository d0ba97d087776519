"""Glue: the tx receive pipeline as a transport stream handler (TX_SUBMIT, 0xD1).

Contract
--------
:class:`TxSubmitService` owns one :class:`~zapstack.mempool.TxReceiver` and
hands the transport's :class:`~zapstack.transport.session.Session` a handler
factory (``Session(handlers={StreamType.TX_SUBMIT: service.factory})``, one
service shared by every peer's session).  Per stream the handler forwards
``on_data`` / ``on_end`` / ``on_terminated`` to the receiver and translates
its actions:

==================  ==========================================================
receiver action     what the glue does
==================  ==========================================================
RejectStream        this stream: return ``Reject(code)`` (STOP_SENDING);
                    another stream (a deferred verdict or a resumed stream):
                    ``stop_stream(peer, stream_id, code)``, which ``node/``
                    wires to that peer's ``Session.stop_reading`` (idempotent)
WaitForCredit       hold the stream's further chunks in the handler.  The
                    session has no "pause reading" hook, so the bytes QUIC has
                    already accepted wait here; QUIC's per-stream receive
                    window (the transport's ``max_stream_data``) bounds them
Resume              replay the held chunks (and FIN) into the receiver
TxAdmitted,         the submitter's answer (:mod:`~zapstack.mempool.answer`: code,
TxRejected          tx id, :meth:`TxReceiver.credit`) on the stream: this stream's
                    ``Reply(record, fin=True)``, another stream's
                    ``reply_stream(peer, stream_id, record)``; then, like
VerifyRequest       appended to :attr:`TxSubmitService.outbox` for ``node/``
                    (verify off-thread, then call :meth:`TxSubmitService.verified`;
                    gossip admitted txs; metrics); ``notify`` (if given) is
                    called once per call that appended to the outbox
==================  ==========================================================

``stop_stream`` must refuse both halves of the (bidirectional) TX_SUBMIT
stream, so the submitter reads the code as its answer.

Peer identity is the session's authenticated node id (``StreamInfo.peer``):
run sessions with ``require_auth=True`` so it is never ``b""``.  Time comes
from the injected ``clock``.  Single-threaded, like the sessions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from zapstack.errors import WireCode
from zapstack.mempool.actions import (
    Action,
    RejectStream,
    Resume,
    TxAdmitted,
    TxRejected,
    WaitForCredit,
)
from zapstack.mempool.answer import SubmitAnswer, encode_answer
from zapstack.mempool.receive import TxReceiver
from zapstack.transport.events import End, HandlerAction, Reject, Reply
from zapstack.transport.handler import NO_ACTIONS, StreamHandler, StreamInfo

__all__ = ["TxSubmitService"]

StopStream = Callable[[bytes, int, int], None]
"""``(peer, stream_id, wire code)``: refuse another stream of that peer."""
ReplyStream = Callable[[bytes, int, bytes], None]
"""``(peer, stream_id, record)``: answer another stream of that peer (then FIN)."""


def _no_stop(_peer: bytes, _stream_id: int, _code: int) -> None:
    return None


def _no_reply(_peer: bytes, _stream_id: int, _record: bytes) -> None:
    return None


class _Handler:
    __slots__ = ("fin", "held", "key", "paused", "service")

    def __init__(self, service: TxSubmitService, key: tuple[bytes, int]) -> None:
        self.service = service
        self.key = key
        self.paused = False
        self.held: list[bytes] = []
        self.fin = False

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        if self.paused:
            self.held.append(data)
            return NO_ACTIONS
        svc = self.service
        return svc._route(self.key, svc.rx.data_received(*self.key, data, svc.clock()))

    def on_end(self) -> Sequence[HandlerAction]:
        if self.paused:
            self.fin = True
            return NO_ACTIONS
        svc = self.service
        return svc._route(self.key, svc.rx.stream_ended(*self.key, svc.clock()))

    def on_terminated(self, end: End, code: int | None) -> None:
        self.held.clear()
        self.service._handlers.pop(self.key, None)
        self.service._route(self.key, self.service.rx.stream_reset(*self.key))


class TxSubmitService:
    """One receiver behind every TX_SUBMIT stream of every peer session."""

    def __init__(
        self,
        rx: TxReceiver,
        *,
        clock: Callable[[], float],
        stop_stream: StopStream = _no_stop,
        reply_stream: ReplyStream = _no_reply,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.rx = rx
        self.notify = notify
        """Called after the outbox grew (``node/`` wakes the task that drains it)."""
        self.clock = clock
        self.stop_stream = stop_stream
        self.reply_stream = reply_stream
        self.outbox: deque[Action] = deque()
        """Actions for ``node/``: VerifyRequest, TxAdmitted, TxRejected."""
        self._handlers: dict[tuple[bytes, int], _Handler] = {}

    def factory(self, info: StreamInfo) -> StreamHandler:
        """The ``HandlerFactory`` for ``StreamType.TX_SUBMIT``."""
        key = (info.peer, info.stream_id)
        h = _Handler(self, key)
        self._handlers[key] = h
        self._route(key, self.rx.stream_opened(*key, self.clock()))
        return h

    def verified(self, peer: bytes, stream_id: int, ok: bool) -> None:
        """Report the result of a ``VerifyRequest`` taken from the outbox."""
        self._route(None, self.rx.verified(peer, stream_id, ok))

    def tick(self) -> None:
        """Time out stalled streams (call periodically)."""
        self._route(None, self.rx.tick(self.clock()))

    def _answer(self, a: TxAdmitted | TxRejected) -> bytes:
        credit = self.rx.credit()
        if isinstance(a, TxAdmitted):
            answer = SubmitAnswer(WireCode.NO_ERROR, a.result.tx_id, credit, a.account_nonce)
        else:
            answer = SubmitAnswer(a.code, a.tx_id, credit, a.account_nonce)
        return encode_answer(answer)

    def _route(
        self, current: tuple[bytes, int] | None, actions: Sequence[Action]
    ) -> Sequence[HandlerAction]:
        """Carry out ``actions``; return the handler actions for ``current``."""
        mine: list[HandlerAction] = []
        resumed: list[_Handler] = []
        queued = len(self.outbox)
        for a in actions:
            key = (a.peer, a.stream_id)
            h = self._handlers.get(key)
            if isinstance(a, WaitForCredit):
                if h is not None:
                    h.paused = True
                continue
            if isinstance(a, Resume):
                if h is not None:
                    h.paused = False
                    resumed.append(h)
                continue
            if isinstance(a, RejectStream):
                self._handlers.pop(key, None)
                if key == current:
                    mine.append(Reject(a.code))
                else:
                    self.stop_stream(a.peer, a.stream_id, a.code)
                continue
            if isinstance(a, TxAdmitted | TxRejected):
                self._handlers.pop(key, None)  # admitted or rejected: the stream is done
                record = self._answer(a)
                if key == current:
                    mine.append(Reply(record, fin=True))
                else:
                    self.reply_stream(a.peer, a.stream_id, record)
            self.outbox.append(a)
        for h in resumed:  # replay what arrived while the stream waited for credit
            held, h.held = h.held, []
            for chunk in held:
                if h.paused or h.key not in self._handlers:
                    h.held.append(chunk)
                    continue
                self._route(None, self.rx.data_received(*h.key, chunk, self.clock()))
            if h.fin and not h.paused and h.key in self._handlers and not h.held:
                h.fin = False
                self._route(None, self.rx.stream_ended(*h.key, self.clock()))
        if self.notify is not None and len(self.outbox) > queued:
            self.notify()
        return mine
