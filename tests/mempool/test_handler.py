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
