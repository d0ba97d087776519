"""The tx receive pipeline over real QUIC (qh3 on 127.0.0.1), bounded in time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zapstack.errors import Stage, WireCode
from zapstack.mempool import Mempool, TxReceiver
from zapstack.mempool.reputation import DEFAULT_PENALTY, PENALTY
from zapstack.node.adapters.mempool_quic import TxAdmitConfig, TxAdmitServer
from zapstack.node.adapters.mempool_receipts import ReceiptTracker
from zapstack.transport.bindings import run_bounded
from zapstack.transport.driver import Endpoint, OutStream, Peer
from zapstack.transport.events import End, Reject, StreamEnded
from zapstack.transport.handler import StreamInfo
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.qh3_adapter import Qh3Binding
from zapstack.transport.streams import STREAM_TYPES, StreamType
from zapstack.zap import DEFAULT_CHAIN_ID, parse_tx

from ...mempool.conftest import tx_bytes
from ...mempool.test_receive import MALFORMED

BOUND = 15.0  # seconds per real-QUIC test
CAUGHT_AFTER_FIN = {WireCode.TRUNCATED, WireCode.BAD_SIGNATURE}
"""Verdicts reached only at FIN (deferred verification): nothing left to stop."""


class Net:
    """One receiving node and ``n`` submitting peers on 127.0.0.1."""

    def __init__(self, rx: TxReceiver, config: TxAdmitConfig) -> None:
        self.rx = rx
        self.server = TxAdmitServer(rx, config)
        self.binding = Qh3Binding()
        self.listener = Endpoint(self.binding, NodeIdentity.generate(100), self.server.handlers)
        self.dialers: list[Endpoint] = []
        self.trackers: list[ReceiptTracker] = []

    async def up(self, n: int) -> list[Peer]:
        port = await self.listener.listen()
        self.server.start(self.listener)
        peers = []
        for i in range(n):
            tracker = ReceiptTracker()
            dialer = Endpoint(self.binding, NodeIdentity.generate(i + 1), tracker.handlers)
            peers.append(await dialer.dial("127.0.0.1", port, self.listener.identity.node_id))
            self.dialers.append(dialer)
            self.trackers.append(tracker)
        await self.server.wait_until(lambda: len(self.server.peers) == n, 5)
        return peers

    async def down(self) -> None:
        await self.server.close()
        await self.server.close()  # idempotent
        for dialer in self.dialers:
            await dialer.close()
        await self.listener.close()


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(loop(), timeout)


def test_malformed_streams_stopped_while_valid_ones_and_another_peer_land() -> None:
    rx = TxReceiver(Mempool(), chain_id=DEFAULT_CHAIN_ID, defer_verification=True)
    net = Net(rx, TxAdmitConfig(receipts=True, tick_interval=0.05))

    async def main() -> None:
        pa, pb = await net.up(2)
        a_id, b_id = pa.endpoint.identity.node_id, pb.endpoint.identity.node_id
        bad: list[tuple[OutStream, Stage, WireCode]] = []
        valid: list[tuple[bytes, OutStream]] = []
        for i, (raw, stage, code, _offset) in enumerate(MALFORMED.values()):
            stream = await pa.open_stream(StreamType.TX_SUBMIT)
            await stream.write(raw[:30])  # the bad byte may be in either piece
            await stream.write(raw[30:], fin=code in CAUGHT_AFTER_FIN)
            bad.append((stream, stage, code))
            for j in range(2):  # the same peer's valid streams, interleaved
                ok = tx_bytes(1, 2 * i + j, 3)
                stream = await pa.open_stream(StreamType.TX_SUBMIT)
                await stream.write(ok[:100])
                await stream.finish(ok[100:])
                valid.append((ok, stream))
        b_frames = [tx_bytes(2, i, 4, 300) for i in range(12)]  # a second peer, receipts on
        receipts = [net.trackers[1].expect(raw) for raw in b_frames]
        for raw in b_frames:
            await (await pb.open_stream(StreamType.TX_SUBMIT)).finish(raw)

        def settled() -> bool:
            stopped = all(s.end is not None for s, _, c in bad if c not in CAUGHT_AFTER_FIN)
            done = net.server.admitted == len(valid) + len(b_frames)
            return stopped and done and rx.stats.rejected_total == len(MALFORMED)

        await until(settled)
        await asyncio.wait_for(asyncio.gather(*receipts), 5)  # B's frames came back

        for raw in [ok for ok, _ in valid] + b_frames:
            assert parse_tx(raw).tx_id in rx.pool
        assert len(rx.pool) == len(valid) + len(b_frames)
        assert all(s.end == (End.FIN, None) for _, s in valid)
        inbound_a = net.server.peers[a_id]
        stopped_at_receiver = {
            e.stream_id: e.code
            for e in inbound_a.events
            if isinstance(e, StreamEnded) and e.receiving and e.end is End.REJECTED
        }
        for stream, stage, code in bad:
            assert rx.stats.rejected[(stage, code)] == 1
            if code in CAUGHT_AFTER_FIN:
                continue
            assert stream.end == (End.STOPPED, code)  # the sender saw STOP_SENDING(code)
            assert stopped_at_receiver[stream.stream_id] == code
        assert net.server.stopped == 1  # the deferred BAD_SIGNATURE verdict (a no-op stop)
        want = sum(PENALTY.get(c, DEFAULT_PENALTY) for _, _, c in bad)
        assert rx.reputation.scores() == {a_id: -want}  # real node ids, only A charged
        assert rx.reputation.score(b_id) == 0
        assert not pa.session.closed and not pb.session.closed
        assert rx.in_flight == 0 and rx.admission.buffers == 0
        assert net.server.batches > 0 and net.trackers[0].received == len(valid)
        await net.down()

    run_bounded(main(), BOUND)


@pytest.mark.parametrize("killer", ["dialer", "listener"])
def test_connection_close_ends_all_its_streams_other_peer_continues(killer: str) -> None:
    rx = TxReceiver(Mempool(), chain_id=DEFAULT_CHAIN_ID, defer_verification=True)
    net = Net(rx, TxAdmitConfig())
    k = 6

    async def main() -> None:
        pa, pb = await net.up(2)
        a_id = pa.endpoint.identity.node_id
        a_raw = [tx_bytes(3, i, 5) for i in range(k)]
        b_raw = [tx_bytes(4, i, 5) for i in range(k + 3)]
        a_streams, b_streams = [], []
        for raw_a, raw_b in zip(a_raw, b_raw, strict=False):
            s = await pa.open_stream(StreamType.TX_SUBMIT)
            await s.write(raw_a[:150])  # partial: in flight at the receiver
            a_streams.append(s)
            s = await pb.open_stream(StreamType.TX_SUBMIT)
            await s.write(raw_b[:150])
            b_streams.append(s)
        await until(lambda: rx.in_flight == 2 * k and rx.admission.bytes_reserved > 0)
        inbound_a = net.server.peers[a_id]

        if killer == "dialer":
            pa.close(WireCode.CANCELLED, "going away")
        else:
            inbound_a.close(WireCode.RATE_LIMITED, "kicked")
        await inbound_a.wait_closed(5)
        await pa.wait_closed(5)
        await net.server.wait_until(lambda: a_id not in net.server.peers, 5)

        assert rx.in_flight == k and rx.admission.buffers == k  # only B's remain
        assert rx.stats.peer_resets == k
        aborted = {
            e.stream_id
            for e in inbound_a.events
            if isinstance(e, StreamEnded) and e.receiving and e.end is End.ABORTED
        }
        assert aborted == {s.stream_id for s in a_streams}
        assert all(s.end is not None and s.end[0] is End.ABORTED for s in a_streams)

        for s, raw in zip(b_streams, b_raw, strict=False):
            await s.finish(raw[150:])
        for raw in b_raw[k:]:  # new streams after the other connection died
            await (await pb.open_stream(StreamType.TX_SUBMIT)).finish(raw)
        await net.server.wait_until(lambda: net.server.admitted == len(b_raw), 5)
        assert all(parse_tx(raw).tx_id in rx.pool for raw in b_raw)
        assert not any(parse_tx(raw).tx_id in rx.pool for raw in a_raw)
        assert rx.in_flight == 0 and rx.admission.buffers == 0
        assert rx.reputation.scores() == {}  # a lost connection costs nothing
        assert not pb.session.closed
        await net.down()

    run_bounded(main(), BOUND)


def test_colliding_stream_key_is_refused() -> None:
    async def main() -> None:
        server = TxAdmitServer(TxReceiver(Mempool()))
        spec = STREAM_TYPES[StreamType.TX_SUBMIT]
        info = StreamInfo(2, StreamType.TX_SUBMIT, spec, False, b"p" * 32)
        first = server.factory(info)
        second = server.factory(info)  # a second connection of the same node id
        assert second.on_data(b"x") == (Reject(WireCode.STREAM_PROTOCOL_VIOLATION),)
        assert server.rx.in_flight == 1
        first.on_terminated(End.ABORTED, 0)
        assert server.rx.in_flight == 0
        assert server.factory(info) is not None and server.rx.in_flight == 1
        await server.close()

    run_bounded(main(), BOUND)


def test_deferred_verdicts_answer_the_submitter_on_its_stream() -> None:
    """With the signature checked off-thread, the answer comes after FIN from another
    call path (``reply_stream`` / ``refuse``): the submitter still reads it."""
    from zapstack.node.adapters.submit import submit_tx

    rx = TxReceiver(Mempool(min_fee=2), chain_id=DEFAULT_CHAIN_ID, defer_verification=True)
    net = Net(rx, TxAdmitConfig(tick_interval=0.05))
    good, cheap = tx_bytes(1, 0, 5), tx_bytes(2, 0, 1)

    async def main() -> list[WireCode]:
        (peer,) = await net.up(1)
        try:
            frames = [good, good, cheap, MALFORMED["signature"][0]]
            answers = [await submit_tx(peer, f) for f in frames]
            return [a.code for a in answers]
        finally:
            await net.down()

    codes = run_bounded(main(), BOUND)
    assert codes == [
        WireCode.NO_ERROR,
        WireCode.DUPLICATE,
        WireCode.FEE_TOO_LOW,
        WireCode.BAD_SIGNATURE,
    ]
