"""The receive pipeline behind the real sans-IO transport session (in-memory loopback)."""

from __future__ import annotations

import pytest

from zapstack.errors import WireCode
from zapstack.mempool import (
    AdmissionController,
    Mempool,
    TxAdmitted,
    TxReceiver,
    VerifyRequest,
    verify_tx,
)
from zapstack.mempool.answer import decode_answer
from zapstack.mempool.handler import TxSubmitService
from zapstack.testing import MockClock
from zapstack.testing.loopback import LoopbackPair
from zapstack.transport.events import End, StreamEnded
from zapstack.transport.streams import StreamType
from zapstack.zap import DEFAULT_CHAIN_ID, MAX_TX_SIZE, parse_tx

from .conftest import tx_bytes
from .test_receive import MALFORMED


def wire(rx: TxReceiver, chunk: int) -> tuple[LoopbackPair, TxSubmitService]:
    clock = MockClock()
    svc = TxSubmitService(rx, clock=clock.now)
    pair = LoopbackPair(listener_handlers={StreamType.TX_SUBMIT: svc.factory}, chunk=chunk)
    svc.stop_stream = lambda _peer, sid, code: pair.listener.stop_reading(sid, code)
    return pair, svc


def rejected(pair: LoopbackPair) -> dict[int, int | None]:
    return {
        e.stream_id: e.code
        for e in pair.listener_events
        if isinstance(e, StreamEnded) and e.receiving and e.end is End.REJECTED
    }


@pytest.mark.parametrize("chunk", [1, 0])
def test_malformed_streams_stopped_with_their_code_valid_ones_admitted(chunk: int) -> None:
    rx = TxReceiver(Mempool(), chain_id=DEFAULT_CHAIN_ID)
    pair, svc = wire(rx, chunk)
    want: dict[int, WireCode] = {}
    valid = []
    for i, (raw, _stage, code, _off) in enumerate(MALFORMED.values()):
        sid = pair.dialer.open_stream(StreamType.TX_SUBMIT)
        pair.dialer.send(sid, raw, fin=True)
        want[sid] = code
        ok = tx_bytes(1, i, 3)
        sid = pair.dialer.open_stream(StreamType.TX_SUBMIT)
        pair.dialer.send(sid, ok, fin=True)
        valid.append(parse_tx(ok).tx_id)
    pair.pump()
    truncated = [sid for sid, code in want.items() if code is WireCode.TRUNCATED]
    for sid in truncated:  # caught at FIN: the stream is over, nothing left to stop
        del want[sid]
    assert rejected(pair) == want
    assert rx.stats.rejected_total == len(MALFORMED)
    assert sorted(a.result.tx_id for a in svc.outbox if isinstance(a, TxAdmitted)) == sorted(valid)
    assert rx.in_flight == 0 and rx.reputation.score(b"") < 0


def test_backpressure_over_the_session_all_land() -> None:
    big = [tx_bytes(s, 0, 5, 12_000) for s in range(6)]  # byte budget fits two at a time
    rx = TxReceiver(Mempool(), admission=AdmissionController(max_buffers=3, max_bytes=MAX_TX_SIZE))
    pair, _ = wire(rx, chunk=1000)
    sids = [pair.dialer.open_stream(StreamType.TX_SUBMIT) for _ in big]
    for sid, raw in zip(sids, big, strict=True):  # every stream starts before any ends
        pair.dialer.send(sid, raw[:500])
    pair.pump()
    assert rx.admission.bytes_reserved <= MAX_TX_SIZE and rx.stats.waits == 4
    for sid, raw in zip(sids, big, strict=True):
        pair.dialer.send(sid, raw[500:], fin=True)
    pair.pump()
    assert len(rx.pool) == 6 and rx.stats.waits > 0 and rx.stats.resumes == rx.stats.waits
    assert rx.in_flight == 0 and rx.admission.buffers == 0


def test_deferred_verification_through_the_outbox() -> None:
    rx = TxReceiver(Mempool(), defer_verification=True)
    pair, svc = wire(rx, chunk=64)
    bad = MALFORMED["signature"][0]
    for raw in (tx_bytes(0, 0, 5), bad):
        sid = pair.dialer.open_stream(StreamType.TX_SUBMIT)
        pair.dialer.send(sid, raw, fin=True)
    pair.pump()
    reqs = [a for a in svc.outbox if isinstance(a, VerifyRequest)]
    assert len(reqs) == 2
    for r in reqs:
        svc.verified(r.peer, r.stream_id, verify_tx(r.view))
    assert len(rx.pool) == 1
    assert rx.stats.rejected_total == 1 and rx.in_flight == 0


def test_connection_close_drops_every_partial_buffer() -> None:
    rx = TxReceiver(Mempool())
    pair, _ = wire(rx, chunk=0)
    for s in range(5):
        sid = pair.dialer.open_stream(StreamType.TX_SUBMIT)
        pair.dialer.send(sid, tx_bytes(s, 0, 5)[:100])  # no FIN: in flight
    pair.pump()
    assert rx.in_flight == 5
    pair.dialer.close(WireCode.NO_ERROR, "bye")
    pair.pump()
    assert rx.in_flight == 0 and rx.admission.buffers == 0 and rx.stats.peer_resets == 5
    assert len(rx.pool) == 0


class _Answer:
    """The submitter's reply handler: keeps the record or the reset code."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.end: tuple[End, int | None] | None = None

    def on_data(self, data: bytes) -> tuple[()]:
        self.data += data
        return ()

    def on_end(self) -> tuple[()]:
        self.end = (End.FIN, None)
        return ()

    def on_terminated(self, end: End, code: int | None) -> None:
        self.end = (end, code)


def _submit(pair: LoopbackPair, raw: bytes) -> _Answer:
    reply = _Answer()
    sid = pair.dialer.open_stream(StreamType.TX_SUBMIT, handler=reply)
    pair.dialer.send(sid, raw, fin=True)
    return reply


@pytest.mark.parametrize("defer", [False, True])
def test_every_submitter_gets_its_answer_with_the_code(defer: bool) -> None:
    pool = Mempool(min_fee=2, max_txs=100)
    rx = TxReceiver(pool, defer_verification=defer)
    pair, svc = wire(rx, chunk=7)

    def refuse(_peer: bytes, sid: int, code: int) -> None:  # what Peer.refuse does
        pair.listener.stop_reading(sid, code)
        pair.listener.cancel_write(sid, code)

    svc.stop_stream = refuse
    svc.reply_stream = lambda _p, sid, record: pair.listener.send(sid, record, fin=True)
    good, cheap = tx_bytes(1, 0, 5), tx_bytes(2, 0, 1)
    cases = {
        "admitted": (_submit(pair, good), WireCode.NO_ERROR, parse_tx(good).tx_id),
        "fee": (_submit(pair, cheap), WireCode.FEE_TOO_LOW, parse_tx(cheap).tx_id),
        "magic": (_submit(pair, MALFORMED["magic"][0]), WireCode.BAD_MAGIC, None),
        "sig": (_submit(pair, MALFORMED["signature"][0]), WireCode.BAD_SIGNATURE, None),
    }
    pair.pump()
    for r in [a for a in svc.outbox if isinstance(a, VerifyRequest)]:
        svc.verified(r.peer, r.stream_id, verify_tx(r.view))
    pair.pump()
    dup = _submit(pair, good)  # the same frame again: answered DUPLICATE
    cases["dup"] = (dup, WireCode.DUPLICATE, parse_tx(good).tx_id)
    pair.pump()
    for what, (reply, code, tx_id) in cases.items():
        if tx_id is None:  # refused at stages 1-4: the reset's code is the answer
            assert reply.end == (End.RESET, code) and not reply.data, what
            continue
        assert reply.end == (End.FIN, None), what
        answer = decode_answer(bytes(reply.data))
        # credit: 75 of 100 txs is the high water; the pool holds one tx
        assert (answer.code, answer.tx_id, answer.credit) == (code, tx_id, 64), what
        assert answer.account_nonce == 0


def test_pushback_before_the_pool_is_full() -> None:
    pool = Mempool(max_txs=8)
    rx = TxReceiver(pool, high_water=0.5)  # 4 of 8
    pair, _svc = wire(rx, chunk=0)
    replies = [_submit(pair, tx_bytes(s, 0, 5)) for s in range(6)]
    pair.pump()
    answers = [decode_answer(bytes(r.data)) for r in replies]
    assert [a.code for a in answers] == [WireCode.NO_ERROR] * 4 + [WireCode.RATE_LIMITED] * 2
    assert [a.credit for a in answers] == [3, 2, 1, 0, 0, 0]
    assert len(pool) == 4 < pool.max_txs and rx.stats.pushed_back == 2


def test_notify_fires_once_per_call_that_grew_the_outbox() -> None:
    rx = TxReceiver(Mempool(), defer_verification=True)
    pair, svc = wire(rx, chunk=0)
    calls: list[int] = []
    svc.notify = lambda: calls.append(len(svc.outbox))
    _submit(pair, tx_bytes(1, 0, 5))
    _submit(pair, MALFORMED["magic"][0])  # refused at stage 1: nothing for the outbox
    pair.pump()
    assert calls == [1]  # the VerifyRequest of the good one
    (req,) = svc.outbox
    assert isinstance(req, VerifyRequest)
    svc.outbox.clear()
    svc.verified(req.peer, req.stream_id, True)
    assert calls == [1, 1] and isinstance(svc.outbox[0], TxAdmitted)
