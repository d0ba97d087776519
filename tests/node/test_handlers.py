"""The node's stream glue: whole-message buffering, consensus streams (gossip: test_txpipe)."""

from __future__ import annotations

from typing import Any

from zapstack.errors import WireCode
from zapstack.node import handlers
from zapstack.node.handlers import Collect
from zapstack.transport.events import End, HandlerAction, Reject


def test_collect_hands_over_the_whole_message_at_fin() -> None:
    got: list[bytes] = []

    def done(data: bytes) -> list[HandlerAction] | None:
        got.append(data)
        return None

    c = Collect(8, done)
    assert c.on_data(b"abc") == [] and c.on_data(b"def") == []
    assert c.on_end() == [] and got == [b"abcdef"]


def test_collect_rejects_a_stream_over_its_limit_and_drops_it() -> None:
    c = Collect(4, lambda data: None)
    assert c.on_data(b"abcde") == [Reject(WireCode.STREAM_PROTOCOL_VIOLATION)]
    assert c.buf == bytearray()


def test_collect_checks_the_first_byte_only() -> None:
    seen: list[int] = []

    def first(kind: int) -> list[HandlerAction]:
        seen.append(kind)
        return [Reject(WireCode.STREAM_PROTOCOL_VIOLATION)] if kind == 0xFF else []

    assert Collect(64, lambda d: None, first).on_data(b"\xff..") == [
        Reject(WireCode.STREAM_PROTOCOL_VIOLATION)
    ]
    ok = Collect(64, lambda d: None, first)
    assert ok.on_data(b"\x01\xff") == [] and ok.on_data(b"\xff") == []
    assert seen == [0xFF, 0x01]


def test_collect_drops_a_partial_message_when_the_stream_ends_early() -> None:
    got: list[bytes] = []
    c = Collect(64, lambda data: got.append(data))  # type: ignore[func-returns-value]
    c.on_data(b"partial")
    c.on_terminated(End.RESET, int(WireCode.STREAM_PROTOCOL_VIOLATION))
    assert c.buf == bytearray() and got == []


def test_a_consensus_stream_from_a_non_validator_is_refused_on_its_first_byte() -> None:
    import types

    from zapstack.mempool.reputation import Reputation
    from zapstack.node.wire import MsgType
    from zapstack.transport.handler import StreamInfo
    from zapstack.transport.streams import STREAM_TYPES, StreamType

    node: Any = types.SimpleNamespace(
        conns=types.SimpleNamespace(by_node_id={b"v" * 32: 1}),
        rx=types.SimpleNamespace(reputation=Reputation()),
        inbox=None,
    )
    spec = STREAM_TYPES[StreamType.PROPOSAL]
    stranger = StreamInfo(2, StreamType.PROPOSAL, spec, False, b"s" * 32)
    h = handlers._consensus_handler(node, stranger)
    assert h.on_data(bytes([MsgType.PROPOSAL]) + bytes(100)) == [
        Reject(WireCode.STREAM_PROTOCOL_VIOLATION)
    ]
    validator = StreamInfo(2, StreamType.PROPOSAL, spec, False, b"v" * 32)
    h = handlers._consensus_handler(node, validator)
    assert h.on_data(bytes([MsgType.PROPOSAL]) + bytes(100)) == []
