"""HttpSubmitter: the same answers as a TX_SUBMIT stream, through the same service.

Expected answers follow docs/formats/streams.md §TX_SUBMIT answer and the pool's rules:
a funded tx is admitted (and lands in the service's outbox, which the node gossips), the
same frame again is DUPLICATE, a frame with a bad magic is answered by the stage-1 code
with no tx id and no credit, and a stream that had to wait for buffer credit is answered
when the credit frees up; verdicts for other peers still reach the original callbacks."""

from __future__ import annotations

import asyncio

import pytest

from zapstack.errors import WireCode
from zapstack.mempool import Mempool
from zapstack.mempool.actions import TxAdmitted
from zapstack.mempool.admission import AdmissionController
from zapstack.mempool.handler import TxSubmitService
from zapstack.mempool.receive import TxReceiver
from zapstack.node.http.api_submit import HTTP_PEER_PREFIX, HttpSubmitter
from zapstack.transport.handler import StreamInfo
from zapstack.transport.streams import STREAM_TYPES, StreamType
from zapstack.zap import Signer, SigScheme, build_transfer, parse_tx

USER = Signer(SigScheme.ED25519, b"\x07" * 32)


NOW = [0.0]


def _service(max_buffers: int = 64) -> tuple[TxSubmitService, list[tuple[bytes, int, int]]]:
    stops: list[tuple[bytes, int, int]] = []
    rx = TxReceiver(Mempool(), admission=AdmissionController(max_buffers=max_buffers))
    svc = TxSubmitService(rx, clock=lambda: NOW[0], stop_stream=lambda *a: stops.append(a))
    return svc, stops


def test_answers_match_the_quic_path() -> None:
    svc, _ = _service()
    sub = HttpSubmitter(svc)
    frame = build_transfer(USER, b"\x01" * 32, 5, 2, 0)

    async def main() -> list:  # type: ignore[type-arg]
        return [await sub.submit("10.0.0.1", f) for f in (frame, frame, b"\x7fZIP" + frame[4:])]

    ok, dup, bad = asyncio.run(main())
    tx_id = parse_tx(frame).tx_id
    assert (ok.code, ok.tx_id, ok.credit, ok.account_nonce) == (WireCode.NO_ERROR, tx_id, 64, 0)
    assert (dup.code, dup.tx_id) == (WireCode.DUPLICATE, tx_id)
    assert (bad.code, bad.tx_id, bad.credit) == (WireCode.BAD_MAGIC, b"", 0)
    admitted = [a for a in svc.outbox if isinstance(a, TxAdmitted)]
    assert [a.result.tx_id for a in admitted] == [tx_id]  # what the node's tick loop gossips
    assert admitted[0].peer == HTTP_PEER_PREFIX + b"10.0.0.1"
    assert svc.rx.in_flight == 0


def test_a_stream_waiting_for_credit_is_answered_later_and_others_pass_through() -> None:
    svc, stops = _service(max_buffers=1)
    sub = HttpSubmitter(svc)
    peer = b"\x09" * 32  # a QUIC peer holds the only buffer slot
    info = StreamInfo(0, StreamType.TX_SUBMIT, STREAM_TYPES[StreamType.TX_SUBMIT], False, peer)
    svc.factory(info)  # opened, nothing sent yet: it holds the slot
    frame = build_transfer(USER, b"\x01" * 32, 5, 2, 0)

    async def main() -> object:
        task = asyncio.ensure_future(sub.submit("10.0.0.2", frame))
        await asyncio.sleep(0)
        assert not task.done()  # no slot: waiting
        NOW[0] += 1000.0
        svc.tick()  # the stalled QUIC stream times out; its slot goes to the HTTP stream
        return await asyncio.wait_for(task, 5)

    answer = asyncio.run(main())
    assert answer.code is WireCode.NO_ERROR  # type: ignore[attr-defined]
    assert stops == [(peer, 0, WireCode.TIMEOUT)]  # the QUIC verdict went on to its callback


def test_a_wait_past_the_timeout_resets_the_stream() -> None:
    svc, _ = _service(max_buffers=1)
    sub = HttpSubmitter(svc)
    info = StreamInfo(0, StreamType.TX_SUBMIT, STREAM_TYPES[StreamType.TX_SUBMIT], False, b"p")
    svc.factory(info)  # holds the only slot forever

    async def main() -> None:
        await sub.submit("10.0.0.3", build_transfer(USER, b"\x01" * 32, 5, 2, 0), timeout=0.05)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert svc.rx.in_flight == 1  # only the QUIC stream is left
