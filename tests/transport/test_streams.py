"""The stream-type table and the WireCode table equal their doc tables."""

from __future__ import annotations

import re
from pathlib import Path

from zapstack.errors import WireCode
from zapstack.transport.streams import (
    STREAM_TYPE_MAX,
    STREAM_TYPE_MIN,
    STREAM_TYPES,
    Direction,
    Role,
    StreamType,
    spec_of,
)

from ..conftest import markdown_rows

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats" / "streams.md"


def doc_rows(first_header: str) -> list[list[str]]:
    return markdown_rows(DOC, f"| {first_header} |")


def test_every_type_in_range_and_documented() -> None:
    rows = doc_rows("byte")
    documented = {int(r[0], 16): r for r in rows}
    assert set(documented) == {int(t) for t in STREAM_TYPES}
    for stream_type, spec in STREAM_TYPES.items():
        assert STREAM_TYPE_MIN <= stream_type <= STREAM_TYPE_MAX
        assert spec.type is stream_type
        _, name, direction, role, opener, content = documented[stream_type]
        assert (name, direction, role, opener, content) == (
            stream_type.name,
            spec.direction.value,
            spec.role.value,
            spec.opener.value,
            spec.content,
        )
        # request streams are the bidirectional ones, pushes unidirectional
        assert (spec.role is Role.REQUEST) == (spec.direction is Direction.BI)


def test_stack_types_are_assigned() -> None:
    needed = {
        "TX_SUBMIT", "BLOCK_PUSH", "MEMPOOL_GOSSIP", "VOTE", "HEADER_RANGE",
        "STATE_CHUNK", "BLOCK_CHUNK", "DHT_RPC", "CERT_SHARES", "HELLO",
    }  # fmt: skip
    assert needed <= {t.name for t in StreamType}


def test_spec_of_outside_table() -> None:
    for byte in range(256):
        spec = spec_of(byte)
        assert (spec is not None) == (byte in STREAM_TYPES)


def test_wire_code_table_equals_enum() -> None:
    rows = doc_rows("code")
    assert [(int(code, 16), name) for code, name in rows] == [(int(c), c.name) for c in WireCode]


def test_consumer_action_rows_documented() -> None:
    from zapstack.transport.signals import CONSUMER_ACTIONS

    rows = doc_rows("QUIC condition")
    assert [r[0] for r in rows] == [s.value for s in CONSUMER_ACTIONS]
    assert all(re.search(r"\w", r[1]) for r in rows)
