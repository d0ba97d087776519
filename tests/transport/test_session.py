"""The sans-IO session over the in-memory loopback pair (no sockets)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode
from zapstack.testing.loopback import LoopbackPair
from zapstack.transport.events import (
    Authenticate,
    CloseConnection,
    ConnectionEnded,
    End,
    HandlerAction,
    Reject,
    Reply,
    RequestCredit,
    ResetStream,
    SendBlocked,
    SendUnblocked,
    StopSending,
    StreamEnded,
    StreamReady,
    StreamStopped,
)
from zapstack.transport.handler import NO_ACTIONS, StreamInfo
from zapstack.transport.session import Session
from zapstack.transport.streams import StreamType


@dataclass
class Recorder:
    """Records everything; rejects once ``reject_at`` bytes arrived."""

    info: StreamInfo | None = None
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    terminated: tuple[End, int | None] | None = None
    reject_at: int | None = None
    reject_code: int = WireCode.BAD_MAGIC
    reply: bytes | None = None

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        self.data += data
        if self.reject_at is not None and len(self.data) >= self.reject_at:
            return (Reject(self.reject_code),)
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        self.ended = True
        if self.reply is not None:
            return (Reply(self.reply, fin=True),)
        return NO_ACTIONS

    def on_terminated(self, end: End, code: int | None) -> None:
        self.terminated = (end, code)


class Registry:
    """A handler factory that keeps every handler it made, by stream id."""

    def __init__(self, **defaults: object) -> None:
        self.handlers: dict[int, Recorder] = {}
        self.defaults = defaults

    def __call__(self, info: StreamInfo) -> Recorder:
        rec = Recorder(info=info, **self.defaults)  # type: ignore[arg-type]
        self.handlers[info.stream_id] = rec
        return rec


def ended(events: list[object], stream_id: int, *, receiving: bool) -> StreamEnded:
    found = [
        e
        for e in events
        if isinstance(e, StreamEnded) and e.stream_id == stream_id and e.receiving is receiving
    ]
    assert len(found) == 1, found
    return found[0]


def test_type_dispatch_and_fin() -> None:
    reg = Registry()
    pair = LoopbackPair(listener_handlers={StreamType.BLOCK_PUSH: reg})
    sid = pair.dialer.open_stream(StreamType.BLOCK_PUSH)
    pair.dialer.send(sid, b"hello ")
    pair.dialer.send(sid, b"world", fin=True)
    pair.pump()
    rec = reg.handlers[sid]
    assert rec.info is not None and rec.info.stream_type is StreamType.BLOCK_PUSH
    assert bytes(rec.data) == b"hello world" and rec.ended and rec.terminated is None
    end = ended(pair.listener_events, sid, receiving=True)
    assert end.end is End.FIN and end.bytes_received == 11
    assert pair.listener.open_streams() == () and pair.dialer.open_streams() == ()


@pytest.mark.parametrize(
    ("first_byte", "code"),
    [
        (0x00, WireCode.UNKNOWN_STREAM_TYPE),
        (0xDC, WireCode.UNKNOWN_STREAM_TYPE),  # reserved
        (StreamType.VOTE, WireCode.UNKNOWN_STREAM_TYPE),  # no handler registered
        (StreamType.DHT_RPC, WireCode.STREAM_PROTOCOL_VIOLATION),  # bi type on a uni stream
    ],
)
def test_refused_types(first_byte: int, code: WireCode) -> None:
    listener = Session(is_client=False, handlers={StreamType.BLOCK_PUSH: Registry()})
    listener.stream_data(2, bytes([first_byte]) + b"payload", False)
    assert listener.next_command() == StopSending(2, code)
    listener.stream_data(2, b"more", True)  # nothing after the refusal is delivered
    assert listener.next_command() is None


def test_hello_from_listener_side_is_refused() -> None:
    dialer = Session(is_client=True, handlers={StreamType.HELLO: Registry()})
    dialer.stream_data(3, bytes([StreamType.HELLO]), False)
    assert dialer.next_command() == StopSending(3, WireCode.STREAM_PROTOCOL_VIOLATION)
    with pytest.raises(LocalProtocolError):
        dialer.open_stream(StreamType.PROBE, handler=Recorder())  # uni has no reply


def test_reject_isolated_from_other_streams() -> None:
    good, bad = Registry(), Registry(reject_at=3, reject_code=WireCode.BAD_MAGIC)
    pair = LoopbackPair(listener_handlers={StreamType.TX_SUBMIT: good, StreamType.PROBE: bad})
    ids = []
    for i in range(6):
        kind = StreamType.PROBE if i % 2 else StreamType.TX_SUBMIT
        sid = pair.dialer.open_stream(kind)
        pair.dialer.send(sid, b"abcdef")
        ids.append(sid)
    pair.pump()
    for sid in ids:
        pair.dialer.send(sid, b"gh", fin=True) if pair.dialer.is_writable(sid) else None
    pair.pump()
    for i, sid in enumerate(ids):
        if i % 2:
            assert bytes(bad.handlers[sid].data) == b"abcdef"  # nothing after the reject
            end = ended(pair.listener_events, sid, receiving=True)
            assert (end.end, end.code) == (End.REJECTED, WireCode.BAD_MAGIC)
            stopped = ended(pair.dialer_events, sid, receiving=False)
            assert (stopped.end, stopped.code) == (End.STOPPED, WireCode.BAD_MAGIC)
        else:
            assert bytes(good.handlers[sid].data) == b"abcdefgh" and good.handlers[sid].ended


def test_remote_protocol_error_becomes_reject() -> None:
    class Raising(Recorder):
        def on_data(self, data: bytes) -> Sequence[HandlerAction]:
            raise RemoteProtocolError("bad", code=WireCode.OFFSET_OVERRUN)

    pair = LoopbackPair(listener_handlers={StreamType.TX_SUBMIT: lambda info: Raising()})
    sid = pair.dialer.open_stream(StreamType.TX_SUBMIT)
    pair.dialer.send(sid, b"x")
    pair.pump()
    assert [e for e in pair.dialer_events if isinstance(e, StreamStopped)] == [
        StreamStopped(sid, WireCode.OFFSET_OVERRUN)
    ]


def test_reset_drops_partial_and_marks_request_peer_down() -> None:
    server_side = Registry()
    pair = LoopbackPair(listener_handlers={StreamType.BLOCK_CHUNK: server_side})
    reply = Recorder()
    sid = pair.dialer.open_stream(StreamType.BLOCK_CHUNK, handler=reply)
    pair.dialer.send(sid, b"req", fin=True)
    pair.pump()
    pair.listener.send(sid, b"partial")
    pair.listener.cancel_write(sid, WireCode.NOT_FOUND)
    pair.listener.cancel_write(sid, WireCode.NOT_FOUND)  # idempotent
    pair.pump()
    assert bytes(reply.data) == b"partial"
    assert reply.terminated == (End.RESET, WireCode.NOT_FOUND)
    end = ended(pair.dialer_events, sid, receiving=True)
    assert end.peer_down_for_request and end.bytes_received == 7
    assert pair.dialer.open_streams() == () and pair.listener.open_streams() == ()


def test_push_stream_reset_is_not_peer_down() -> None:
    reg = Registry()
    pair = LoopbackPair(listener_handlers={StreamType.BLOCK_PUSH: reg})
    sid = pair.dialer.open_stream(StreamType.BLOCK_PUSH)
    pair.dialer.send(sid, b"12345")
    pair.dialer.cancel_write(sid, WireCode.CANCELLED)
    pair.pump()
    end = ended(pair.listener_events, sid, receiving=True)
    assert (end.end, end.code, end.bytes_received) == (End.RESET, WireCode.CANCELLED, 5)
    assert not end.peer_down_for_request
    with pytest.raises(LocalProtocolError) as info:
        pair.dialer.send(sid, b"after")
    assert "forgotten" in str(info.value)


def test_request_reply_roundtrip() -> None:
    pair = LoopbackPair(listener_handlers={StreamType.DHT_RPC: Registry(reply=b"pong")})
    reply = Recorder()
    sid = pair.dialer.open_stream(StreamType.DHT_RPC, handler=reply)
    pair.dialer.send(sid, b"ping", fin=True)
    pair.pump()
    assert bytes(reply.data) == b"pong" and reply.ended
    assert pair.dialer.open_streams() == () and pair.listener.open_streams() == ()


def test_stream_limit_waits_for_credit() -> None:
    reg = Registry()
    pair = LoopbackPair(listener_handlers={StreamType.PROBE: reg}, max_streams_uni=64)
    ids = [pair.dialer.open_stream(StreamType.PROBE) for _ in range(65)]
    assert pair.dialer.queued_opens() == 1
    assert not pair.dialer.is_writable(ids[64])
    commands = []
    while (c := pair.dialer.next_command()) is not None:
        commands.append(c)
    assert RequestCredit(False) in commands
    for c in commands:  # hand the commands back through the pair
        pair.dialer._commands.append(c)
    for sid in ids[:64]:
        pair.dialer.send(sid, b"x")
    pair.pump()
    assert not pair.dialer.is_writable(ids[64])  # 64 still in flight: no credit
    pair.dialer.send(ids[0], b"", fin=True)
    pair.pump()
    assert pair.dialer.is_writable(ids[64])
    assert StreamReady(ids[64], StreamType.PROBE) in pair.dialer_events
    # cancelling a queued open is legal and frees its place in the queue
    more = [pair.dialer.open_stream(StreamType.PROBE) for _ in range(2)]
    pair.dialer.cancel_write(more[0], WireCode.CANCELLED)
    assert pair.dialer.queued_opens() == 1


def test_back_off_on_blocked() -> None:
    pair = LoopbackPair(listener_handlers={StreamType.PROBE: Registry()})
    sid = pair.dialer.open_stream(StreamType.PROBE)
    pair.dialer.send_blocked(sid, True)
    pair.dialer.send_blocked(sid, True)
    assert pair.dialer.is_blocked(sid)
    pair.dialer.send_blocked(sid, False)
    pair.pump()
    assert [e for e in pair.dialer_events if isinstance(e, SendBlocked | SendUnblocked)] == [
        SendBlocked(sid),
        SendUnblocked(sid),
    ]


def test_flow_control_error_closes_connection() -> None:
    reg = Registry()
    pair = LoopbackPair(listener_handlers={StreamType.PROBE: reg})
    sids = [pair.dialer.open_stream(StreamType.PROBE) for _ in range(3)]
    for sid in sids:
        pair.dialer.send(sid, b"abc")
    pair.pump()
    pair.listener.flow_control_error("peer overran its window")
    pair.pump()
    for sid in sids:
        assert reg.handlers[sid].terminated == (End.ABORTED, 0x03)
    closes = [e for e in pair.dialer_events if isinstance(e, ConnectionEnded)]
    assert closes == [ConnectionEnded(0x03, "peer overran its window", tuple(sids))]
    assert pair.dialer.closed and pair.listener.closed


def test_connection_close_ends_all_streams_idempotently() -> None:
    reg = Registry()
    pair = LoopbackPair(listener_handlers={StreamType.PROBE: reg})
    sids = [pair.dialer.open_stream(StreamType.PROBE) for _ in range(4)]
    for sid in sids:
        pair.dialer.send(sid, b"z")
    pair.pump()
    pair.dialer.close(WireCode.INTERNAL, "bye")
    pair.dialer.close(WireCode.INTERNAL, "bye")
    pair.pump()
    assert all(reg.handlers[s].terminated == (End.ABORTED, WireCode.INTERNAL) for s in sids)
    assert pair.dialer.next_command() is None
    with pytest.raises(LocalProtocolError):
        pair.dialer.open_stream(StreamType.PROBE)
    # unwinds after close are no-ops
    pair.dialer.cancel_write(sids[0], 1)
    pair.dialer.stop_reading(sids[0], 1)
    assert pair.dialer.next_command() is None


def test_local_close_command() -> None:
    session = Session(is_client=True, handlers={})
    session.set_credit(uni=1, bidi=0)
    session.open_stream(StreamType.PROBE)
    session.close(5, "x")
    commands = []
    while (c := session.next_command()) is not None:
        commands.append(c)
    assert commands[-1] == CloseConnection(5, "x")


def test_stop_sending_resets_with_same_code() -> None:
    session = Session(is_client=True, handlers={})
    session.set_credit(uni=4, bidi=0)
    sid = session.open_stream(StreamType.VOTE)
    session.next_command()
    session.stop_sending(sid, WireCode.RATE_LIMITED)
    session.stop_sending(sid, WireCode.RATE_LIMITED)
    assert session.next_command() == ResetStream(sid, WireCode.RATE_LIMITED)
    assert session.next_command() is None


def test_auth_gate_holds_streams_until_hello() -> None:
    early = Registry()

    class Hello(Recorder):
        def on_end(self) -> Sequence[HandlerAction]:
            return (Authenticate(bytes(self.data)),)

    pair = LoopbackPair(
        listener_handlers={StreamType.HELLO: lambda i: Hello(), StreamType.PROBE: early},
        require_auth=True,
    )
    probe = pair.dialer.open_stream(StreamType.PROBE)
    pair.dialer.send(probe, b"early", fin=True)
    pair.pump()
    assert early.handlers == {} and not pair.listener.authenticated
    hello = pair.dialer.open_stream(StreamType.HELLO)
    pair.dialer.send(hello, b"N" * 32, fin=True)
    pair.pump()
    assert pair.listener.authenticated and pair.listener.peer == b"N" * 32
    rec = early.handlers[probe]
    assert bytes(rec.data) == b"early" and rec.ended
    assert rec.info is not None and rec.info.peer == b"N" * 32


@settings(max_examples=40, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=0, max_size=40), min_size=1, max_size=6),
    chunk=st.integers(min_value=1, max_value=7),
)
def test_whole_and_byte_at_a_time_agree(payloads: list[bytes], chunk: int) -> None:
    results = []
    for size in (0, chunk, 1):
        reg = Registry(reject_at=50)
        pair = LoopbackPair(listener_handlers={StreamType.PROBE: reg}, chunk=size)
        sids = []
        for payload in payloads:
            sid = pair.dialer.open_stream(StreamType.PROBE)
            pair.dialer.send(sid, payload, fin=True)
            sids.append(sid)
        pair.pump()
        results.append(
            [
                (min(len(reg.handlers[s].data), 50), reg.handlers[s].ended)
                if s in reg.handlers
                else None
                for s in sids
            ]
        )
    assert results[0] == results[1] == results[2]


def test_streams_first_seen_out_of_order_are_all_accepted() -> None:
    reg = Registry()
    listener = Session(is_client=False, handlers={StreamType.PROBE: reg})
    probe = bytes([StreamType.PROBE])
    for sid in (10, 2, 14, 6):  # client uni ids 2, 6, 10, 14 arriving out of order
        listener.stream_data(sid, probe + b"x", True)
    assert sorted(reg.handlers) == [2, 6, 10, 14]
    assert all(r.ended for r in reg.handlers.values())
    listener.stream_data(6, b"late", True)  # forgotten: ignored
    assert bytes(reg.handlers[6].data) == b"x"
    assert listener.next_command() is None


def test_a_reply_nobody_reads_is_discarded_not_held() -> None:
    pair = LoopbackPair(listener_handlers={StreamType.DHT_RPC: Registry(reply=b"r" * 1000)})
    for _ in range(1200):  # 1.2 MB of replies: more than the 1 MiB pre-HELLO hold
        sid = pair.dialer.open_stream(StreamType.DHT_RPC)
        pair.dialer.send(sid, b"ping", fin=True)
        pair.pump()
        assert ended(pair.dialer_events, sid, receiving=True).end is End.FIN
    assert not pair.dialer.closed and pair.dialer._held_bytes == 0
    assert pair.dialer.open_streams() == ()
