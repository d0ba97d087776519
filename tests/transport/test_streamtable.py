"""Stream halves: transitions emit their command and one StreamEnded each; unwinds are idempotent."""

from __future__ import annotations

import pytest

from zapstack.errors import LocalProtocolError, WireCode
from zapstack.transport.events import End, ResetStream, SendStream, StopSending, StreamEnded
from zapstack.transport.streams import StreamType
from zapstack.transport.streamtable import Half, StreamRecord, StreamTable, wire_code


def _table_with(stream: StreamRecord) -> StreamTable:
    table = StreamTable(is_client=True)
    table._streams[stream.stream_id] = stream
    return table


def test_a_stream_is_forgotten_when_both_halves_end() -> None:
    s = StreamRecord(0, True, True, StreamType.DHT_RPC, None, Half.OPEN, Half.OPEN)
    table = _table_with(s)
    table.send(0, b"req", fin=True)
    assert table.next_command() == SendStream(0, b"req", True)
    assert table.send_end(0) == (End.FIN, None) and table.open_streams() == (0,)
    assert not table.is_writable(0)
    with pytest.raises(LocalProtocolError):
        table.send(0, b"more")
    table.stop_reading(0, WireCode.CANCELLED)
    table.stop_reading(0, WireCode.CANCELLED)  # idempotent
    assert table.next_command() == StopSending(0, WireCode.CANCELLED)
    assert table.next_command() is None and table.open_streams() == ()
    ended = [e for e in iter(table.next_event, None) if isinstance(e, StreamEnded)]
    assert [(e.receiving, e.end) for e in ended] == [(False, End.FIN), (True, End.REJECTED)]


def test_cancel_write_resets_once_and_forgotten_streams_are_no_ops() -> None:
    s = StreamRecord(2, True, False, StreamType.VOTE, None, Half.ABSENT, Half.OPEN)
    table = _table_with(s)
    table.cancel_write(2, WireCode.CANCELLED)
    table.cancel_write(2, WireCode.CANCELLED)
    table.cancel_write(99, WireCode.CANCELLED)
    assert table.next_command() == ResetStream(2, WireCode.CANCELLED)
    assert table.next_command() is None and table.open_streams() == ()


def test_wire_code_accepts_only_known_codes() -> None:
    assert wire_code(int(WireCode.BAD_MAGIC)) is WireCode.BAD_MAGIC
    assert wire_code(None) is None and wire_code(0xDEAD_BEEF) is None
