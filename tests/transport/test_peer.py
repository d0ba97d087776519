"""A Peer over real QUIC on 127.0.0.1, for qh3 and aioquic: stream isolation, credit, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from zapstack.errors import LocalProtocolError, WireCode
from zapstack.transport.bindings import run_bounded
from zapstack.transport.driver import Binding, Endpoint
from zapstack.transport.events import ConnectionEnded, End, HandlerAction, StreamEnded
from zapstack.transport.handler import NO_ACTIONS
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.peer import RECENT_EVENTS
from zapstack.transport.streams import StreamType

from .conftest import setup, teardown


def test_rejected_streams_do_not_disturb_others(binding: Binding) -> None:
    async def main() -> None:
        sink, listener, dialers, (pa, pb), inbound = await setup(binding, 2)
        a_id, b_id = dialers[0].identity.node_id, dialers[1].identity.node_id
        assert set(inbound) == {a_id, b_id}
        sent = []
        for i in range(8):
            stream = await pa.open_stream(StreamType.TX_SUBMIT)
            payload = (b"BAD" if i % 3 == 0 else b"OK!") + bytes([i]) * 500
            await stream.write(payload[:200])
            await stream.write(payload[200:], fin=i % 3 != 0)
            sent.append((a_id, stream, payload))
        for i in range(5):
            stream = await pb.open_stream(StreamType.TX_SUBMIT)
            await stream.finish(b"OK!" + bytes([i]) * 3000)
            sent.append((b_id, stream, b"OK!" + bytes([i]) * 3000))

        def settled() -> bool:
            keys = [(peer, s.stream_id) for peer, s, _ in sent]
            return all(k in sink.streams and sink.streams[k].end for k in keys)

        await sink.wait(settled)
        for peer, stream, payload in sent:
            handler = sink.streams[(peer, stream.stream_id)]
            if payload.startswith(b"BAD"):
                assert handler.end == (End.REJECTED, WireCode.BAD_MAGIC)
            else:
                assert handler.end == (End.FIN, None)
                assert bytes(handler.data) == payload
        # the senders of rejected streams see STOP_SENDING(code) and stop
        bad = [s for _, s, p in sent if p.startswith(b"BAD")]
        for _ in range(200):
            if all(s.end is not None for s in bad):
                break
            await asyncio.sleep(0.01)
        assert all(s.end == (End.STOPPED, WireCode.BAD_MAGIC) for s in bad)
        with pytest.raises(LocalProtocolError):
            await bad[0].write(b"more")
        assert not pa.session.closed and not pb.session.closed
        await teardown(listener, dialers)

    run_bounded(main(), 15)


def test_a_handler_learns_the_peers_host_and_connection(binding: Binding) -> None:
    """The adapter adds what the sans-IO session cannot know: the connection to answer on
    and the peer's address (what a per-host bound counts by)."""

    async def main() -> None:
        sink, listener, dialers, (pa,), inbound = await setup(binding, 1)
        stream = await pa.open_stream(StreamType.TX_SUBMIT)
        await stream.finish(b"OK!")
        key = (dialers[0].identity.node_id, stream.stream_id)
        await sink.wait(lambda: key in sink.streams and sink.streams[key].end)
        info = sink.infos[key]
        assert info.host == "127.0.0.1"
        assert info.responder is inbound[key[0]]
        await teardown(listener, dialers)

    run_bounded(main(), 15)


def test_connection_close_ends_only_that_peers_streams(binding: Binding) -> None:
    async def main() -> None:
        sink, listener, dialers, (pa, pb), inbound = await setup(binding, 2)
        a_id, b_id = dialers[0].identity.node_id, dialers[1].identity.node_id
        a_streams = []
        for _ in range(5):
            stream = await pa.open_stream(StreamType.VOTE)
            await stream.write(b"vote" * 10)
            a_streams.append(stream)
        b_first = await pb.open_stream(StreamType.VOTE)
        await b_first.write(b"live")
        await sink.wait(lambda: len(sink.streams) == 6)
        pa.close(WireCode.INTERNAL, "killed")
        keys = [(a_id, s.stream_id) for s in a_streams]
        await sink.wait(lambda: all(sink.streams[k].end for k in keys))
        for key in keys:
            assert sink.streams[key].end == (End.ABORTED, WireCode.INTERNAL)
        ended = [e for e in inbound[a_id].events if isinstance(e, ConnectionEnded)]
        assert len(ended) == 1 and set(ended[0].streams) >= {s.stream_id for s in a_streams}
        # the other peer's connection and its open stream continue
        assert sink.streams[(b_id, b_first.stream_id)].end is None
        await b_first.finish(b"-more")
        second = await pb.open_stream(StreamType.TX_SUBMIT)
        await second.finish(b"OK!after")
        await sink.wait(
            lambda: (
                (b_id, second.stream_id) in sink.streams
                and sink.streams[(b_id, second.stream_id)].end is not None
            )
        )
        assert bytes(sink.streams[(b_id, b_first.stream_id)].data) == b"live-more"
        assert sink.streams[(b_id, second.stream_id)].end == (End.FIN, None)
        with pytest.raises(LocalProtocolError):
            await pa.open_stream(StreamType.VOTE)
        await teardown(listener, dialers)

    run_bounded(main(), 15)


def test_64_streams_in_flight_and_the_65th_waits(binding: Binding) -> None:
    async def main() -> None:
        sink, listener, dialers, (pa,), _ = await setup(binding, 1)
        a_id = dialers[0].identity.node_id
        # the HELLO stream has finished; 64 concurrent streams are allowed
        streams = [await pa.open_stream(StreamType.PROBE) for _ in range(64)]
        for stream in streams:
            await stream.write(b"p" * 100)
        await sink.wait(lambda: sum(len(h.data) == 100 for h in sink.streams.values()) == 64)
        assert all(h.end is None for h in sink.streams.values())  # all 64 in flight
        waiting = asyncio.ensure_future(pa.open_stream(StreamType.PROBE))
        await asyncio.sleep(0.1)
        assert not waiting.done() and pa.session.queued_opens() == 1
        await streams[0].finish()
        extra = await asyncio.wait_for(waiting, 5)
        await extra.finish(b"65th")
        await sink.wait(
            lambda: (
                (a_id, extra.stream_id) in sink.streams
                and sink.streams[(a_id, extra.stream_id)].end is not None
            )
        )
        for stream in streams[1:]:
            await stream.finish()
        await sink.wait(lambda: all(h.end == (End.FIN, None) for h in sink.streams.values()))
        assert len(sink.streams) == 65
        await teardown(listener, dialers)

    run_bounded(main(), 15)


def test_a_long_lived_connection_keeps_no_per_stream_state(binding: Binding) -> None:
    """Streams come and go by the thousand on a validator's connections: once a stream
    has ended, neither side keeps anything of it (a bounded event log only), and each
    OutStream still knows how it ended."""

    async def main() -> None:
        sink, listener, dialers, (pa,), inbound = await setup(binding, 1)
        a_id = dialers[0].identity.node_id
        n = RECENT_EVENTS + 100
        outs = []
        for i in range(n):
            out = await pa.open_stream(StreamType.PROBE)
            await out.finish(bytes([i % 256]) * 40)
            outs.append(out)
        await sink.wait(lambda: sum(h.end == (End.FIN, None) for h in sink.streams.values()) == n)
        for _ in range(200):  # our ends arrive with the peer's ACKs
            if all(out.end is not None for out in outs):
                break
            await asyncio.sleep(0.01)
        assert all(out.end == (End.FIN, None) for out in outs)
        assert not pa._outs  # nothing kept per ended stream
        assert len(pa.events) == RECENT_EVENTS == len(inbound[a_id].events)
        await teardown(listener, dialers)

    run_bounded(main(), 30)


def test_request_reply_and_cancel_flushes(binding: Binding) -> None:
    async def main() -> None:
        sink, listener, dialers, (pa,), inbound = await setup(binding, 1)
        a_id = dialers[0].identity.node_id

        class Reply_:
            def __init__(self) -> None:
                self.data = bytearray()
                self.done = asyncio.Event()

            def on_data(self, data: bytes) -> Sequence[HandlerAction]:
                self.data += data
                return NO_ACTIONS

            def on_end(self) -> Sequence[HandlerAction]:
                self.done.set()
                return NO_ACTIONS

            def on_terminated(self, end: End, code: int | None) -> None:
                self.done.set()

        reply = Reply_()
        request = await pa.open_stream(StreamType.DHT_RPC, reply)
        await request.finish(b"ping")
        await asyncio.wait_for(reply.done.wait(), 5)
        assert bytes(reply.data) == b"pong:ping"
        # a flushed cancel delivers everything written before it, then the reset
        probe = await pa.open_stream(StreamType.PROBE)
        await probe.write(b"x" * 70_000)
        await probe.cancel_write(WireCode.CANCELLED)
        await probe.cancel_write(WireCode.CANCELLED)  # idempotent
        key = (a_id, probe.stream_id)
        await sink.wait(lambda: key in sink.streams and sink.streams[key].end is not None)
        assert len(sink.streams[key].data) == 70_000
        assert sink.streams[key].end == (End.RESET, WireCode.CANCELLED)
        ends = [
            e
            for e in inbound[a_id].events
            if isinstance(e, StreamEnded) and e.stream_id == probe.stream_id
        ]
        assert [(e.end, e.bytes_received) for e in ends] == [(End.RESET, 70_000)]
        await teardown(listener, dialers)

    run_bounded(main(), 15)


def _assert_hello_refused_and_closed(binding: Binding) -> None:
    """Dial with the (patched) HELLO: the listener refuses it and closes the connection."""

    async def main() -> None:
        listener = Endpoint(binding, NodeIdentity.generate(100), {})
        port = await listener.listen()
        dialer = Endpoint(binding, NodeIdentity.generate(1), {})
        try:
            peer = await dialer.dial("127.0.0.1", port, listener.identity.node_id)
            await peer.wait_closed(3.0)
            assert peer.close_info is not None
            assert peer.close_info.code == WireCode.BAD_SIGNATURE
            assert listener.inbound.empty()  # never handed out as authenticated
        finally:
            await dialer.close()
            await listener.close()

    run_bounded(main(), 15)


@pytest.mark.parametrize(
    "hello",
    [b"\x00\x05junk", bytes(2) + bytes(2)],  # malformed; well-formed framing, no key
)
def test_a_refused_hello_really_closes_the_connection(
    binding: Binding, monkeypatch: pytest.MonkeyPatch, hello: bytes
) -> None:
    """The listener refuses the HELLO and closes: the CONNECTION_CLOSE reaches the
    dialer (it used to stay queued in the session, the connection open)."""
    import zapstack.transport.peer as peer_module

    monkeypatch.setattr(peer_module, "encode_hello", lambda *_args: hello)

    _assert_hello_refused_and_closed(binding)


def test_a_hello_with_the_hybrid_encoding_of_the_dialers_key_is_refused(
    binding: Binding, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A validly signed HELLO whose key is the dialer's own key, hybrid-encoded (it
    would hash to a second node id): the listener refuses it and closes the connection."""
    import hashlib

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    import zapstack.transport.peer as peer_module

    def hybrid_hello(identity: NodeIdentity, listener_id: bytes, odcid: bytes) -> bytes:
        point = identity.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        hybrid = bytes((0x06 + (point[-1] & 1),)) + point[1:]
        spki = identity.spki[: -len(point)] + hybrid  # same DER lengths: only the tag differs
        assert serialization.load_der_public_key(spki).public_numbers() == (  # type: ignore[union-attr]
            identity.key.public_key().public_numbers()
        )
        digest = hashlib.sha256(b"zap/1 hello" + listener_id + bytes((len(odcid),)) + odcid)
        sig = identity.key.sign(digest.digest(), ec.ECDSA(hashes.SHA256()))
        return len(spki).to_bytes(2, "big") + spki + len(sig).to_bytes(2, "big") + sig

    monkeypatch.setattr(peer_module, "encode_hello", hybrid_hello)

    _assert_hello_refused_and_closed(binding)


class _StreamDataReceived:  # the libraries' event class name is what is dispatched on
    def __init__(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self.stream_id, self.data, self.end_stream = stream_id, data, end_stream


class _StreamReset:
    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id, self.error_code = stream_id, error_code


_StreamDataReceived.__name__ = "StreamDataReceived"
_StreamReset.__name__ = "StreamReset"


def _fake_peer(
    is_client: bool, log: list[tuple[object, ...]], reply: dict[int, int], budget: int = 1 << 30
) -> object:
    """A Peer over a fake library and session that log what they are handed; the session
    answers a stream's FIN with a reply of ``reply[stream]`` bytes."""
    from collections import deque

    from zapstack.transport.coalesce import DataCoalescer
    from zapstack.transport.events import SendStream
    from zapstack.transport.peer import Peer
    from zapstack.transport.replybudget import ReplyBudget

    class Quic:
        def __init__(self) -> None:
            self.unsent: dict[int, int] = {}  # what the library holds per stream: none read

        def send_stream_data(self, stream_id: int, data: bytes, fin: bool) -> None:
            log.append(("send", stream_id, len(data)))
            self.unsent[stream_id] = self.unsent.get(stream_id, 0) + len(data)

        def reset_stream(self, stream_id: int, code: int) -> None:
            log.append(("reset_stream", stream_id, code))

    class Binding:
        @staticmethod
        def backlog(quic: Quic, stream_id: int) -> int:
            return quic.unsent.get(stream_id, 0)

    class Protocol:
        _quic = Quic()

        def transmit_now(self) -> None:
            log.append(("transmit",))

    class Session:
        def __init__(self) -> None:
            self.commands: deque[SendStream] = deque()

        def stream_data(self, stream_id: int, data: bytes, fin: bool, now: float) -> None:
            log.append(("data", stream_id, data, fin))
            if fin and stream_id in reply:
                self.commands.append(SendStream(stream_id, bytes(reply[stream_id]), True))

        def stream_reset(self, stream_id: int, code: int) -> None:
            log.append(("reset", stream_id, code))

        def cancel_write(self, stream_id: int, code: int) -> None:
            log.append(("cancel_write", stream_id, code))

        def next_command(self) -> SendStream | None:
            return self.commands.popleft() if self.commands else None

    peer = Peer.__new__(Peer)
    peer.session, peer.protocol = Session(), Protocol()  # type: ignore[assignment]
    peer._incoming, peer._local_bit = DataCoalescer(), 0 if is_client else 1
    peer.binding = Binding()  # type: ignore[assignment]
    peer._replies = ReplyBudget(budget, local_bit=peer._local_bit)
    peer._backlog = lambda sid: Binding.backlog(peer.protocol._quic, sid)
    return peer


def test_replies_on_our_streams_are_merged_over_a_drain() -> None:
    """Data on streams we opened (replies) reaches the session merged per stream, in first
    arrival order, at the end of the drain or before any other event of it."""
    log: list[tuple[object, ...]] = []
    peer: Any = _fake_peer(True, log, {})

    async def main() -> None:
        for sid, data, fin in ((0, b"ab", False), (4, b"x", False), (0, b"cd", True)):
            peer.on_quic_event(_StreamDataReceived(sid, data, fin))
        assert log == []  # held until the drain ends or another event comes
        peer.on_quic_event(_StreamDataReceived(4, b"y", True))
        peer.on_quic_event(_StreamReset(8, 7))  # the held data goes first
        peer.on_quic_event(_StreamDataReceived(8, b"z", False))
        peer._pass_data()  # the end of the drain

    run_bounded(main(), 5)
    assert log == [
        ("data", 0, b"abcd", True),
        ("data", 4, b"xy", True),
        ("reset", 8, 7),
        ("data", 8, b"z", False),
    ]


def test_a_request_is_served_at_once_and_a_large_reply_leaves_before_the_next() -> None:
    """Data on streams the peer opened goes to the session as it comes; a request answered
    with EARLY_SEND bytes or more is handed to the library and transmitted before the next
    request of the same drain is read (the peer reads one reply while we build the next)."""
    from zapstack.transport.peer import EARLY_SEND

    log: list[tuple[object, ...]] = []
    peer: Any = _fake_peer(False, log, {0: EARLY_SEND, 4: 10, 8: EARLY_SEND})

    async def main() -> None:
        for sid, data, fin in ((0, b"r", False), (4, b"q", True), (0, b"s", True), (8, b"t", True)):
            peer.on_quic_event(_StreamDataReceived(sid, data, fin))

    run_bounded(main(), 5)
    assert log == [
        ("data", 0, b"r", False),
        ("data", 4, b"q", True),
        ("send", 4, 10),  # a small reply waits for the loop step's one transmit
        ("data", 0, b"s", True),
        ("send", 0, EARLY_SEND),
        ("transmit",),
        ("data", 8, b"t", True),
        ("send", 8, EARLY_SEND),
        ("transmit",),
    ]


def test_a_peer_that_does_not_read_gets_its_next_reply_reset_rate_limited() -> None:
    """The library holds every reply unsent (the peer grants no flow control): a reply that
    would take the held bytes past the connection's budget is reset with RATE_LIMITED and
    never handed to the library; once the library sent held bytes, replies go again."""
    log: list[tuple[object, ...]] = []
    peer: Any = _fake_peer(False, log, {0: 80, 4: 30, 8: 20, 12: 70, 16: 20}, budget=100)

    async def main() -> None:
        for sid in (0, 4, 8):
            peer.on_quic_event(_StreamDataReceived(sid, b"q", True))
        peer.protocol._quic.unsent[0] = 0  # the peer read the first reply
        for sid in (12, 16):
            peer.on_quic_event(_StreamDataReceived(sid, b"q", True))

    run_bounded(main(), 5)
    limited = WireCode.RATE_LIMITED
    assert [entry for entry in log if entry[0] != "data"] == [
        ("send", 0, 80),
        ("reset_stream", 4, limited),  # 80 held + 30 > 100
        ("cancel_write", 4, limited),  # the session ends our half too: no later part goes
        ("send", 8, 20),  # 80 + 20 fits
        ("send", 12, 70),  # stream 0 drained: 20 + 70 fits
        ("reset_stream", 16, limited),  # 90 + 20 > 100
        ("cancel_write", 16, limited),
    ]
