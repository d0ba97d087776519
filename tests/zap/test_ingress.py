"""Stages 1-4 of the tx receive pipeline: the earliest bad byte, however bytes arrive."""

import pytest

from zapstack.errors import Stage, WireCode
from zapstack.zap import (
    BLOCK_SCHEMAS,
    END,
    NEED_DATA,
    FrameAccepted,
    FrameRejected,
    IngressMachine,
    build_block,
)

from .conftest import BLOCK, CALL, ED, TX, feed, mutate, u32_at


def test_valid_frame_accepted_whole_and_byte_at_a_time() -> None:
    assert feed(TX, None) == feed(TX, 1) == [("accepted", TX)]
    assert (
        feed(BLOCK, None, BLOCK_SCHEMAS) == feed(BLOCK, 1, BLOCK_SCHEMAS) == [("accepted", BLOCK)]
    )


def test_empty_block_byte_at_a_time() -> None:
    empty = build_block(
        ED, height=0, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=[]
    )
    assert (
        feed(empty, 1, BLOCK_SCHEMAS) == feed(empty, None, BLOCK_SCHEMAS) == [("accepted", empty)]
    )


def test_accept_happens_at_last_byte_without_fin() -> None:
    m = IngressMachine()
    m.receive_data(TX[:-1])
    assert m.next_event() is NEED_DATA
    m.receive_data(TX[-1:])
    assert isinstance(m.next_event(), FrameAccepted)
    assert m.next_event() is END


def test_fragmented_frame_view_is_read_only() -> None:
    m = IngressMachine()
    m.receive_data(TX[:50])
    m.receive_data(TX[50:])
    ev = m.next_event()
    assert isinstance(ev, FrameAccepted)
    assert ev.view.buffer.readonly and bytes(ev.view.buffer) == TX


REJECTS = [
    # (name, bytes, stage, code, offset)
    ("magic byte 0", mutate(TX, 0, 0), Stage.MAGIC, WireCode.BAD_MAGIC, 0),
    ("magic byte 3", mutate(TX, 3, 0), Stage.MAGIC, WireCode.BAD_MAGIC, 3),
    ("unknown kind", mutate(TX, 4, 0x7E), Stage.SCHEMA, WireCode.UNKNOWN_KIND, 4),
    ("block on tx stream", BLOCK, Stage.SCHEMA, WireCode.UNKNOWN_KIND, 4),
    ("version", mutate(TX, 5, 2), Stage.HEADER, WireCode.BAD_VERSION, 5),
    ("unknown flag", mutate(TX, 6, 0x81), Stage.HEADER, WireCode.BAD_FLAGS, 6),
    ("unsigned", mutate(TX, 6, 0), Stage.HEADER, WireCode.BAD_FLAGS, 6),
    ("scheme", mutate(TX, 7, 9), Stage.HEADER, WireCode.BAD_SCHEME, 7),
    ("length too small", u32_at(TX, 8, 30), Stage.HEADER, WireCode.BAD_LENGTH, 11),
    ("length too big", u32_at(TX, 8, 10**6), Stage.HEADER, WireCode.BAD_LENGTH, 11),
    ("field count", mutate(TX, 16, 4), Stage.HEADER, WireCode.BAD_FIELD_COUNT, 17),
    ("sig length", mutate(TX, 18, 63), Stage.HEADER, WireCode.BAD_SIG_LENGTH, 19),
    ("reserved", mutate(TX, 20, 1), Stage.HEADER, WireCode.BAD_RESERVED, 20),
    ("pubkey offset", u32_at(TX, 21, 77), Stage.BODY, WireCode.OFFSET_OVERRUN, 24),
    ("amount offset", u32_at(TX, 29, 200), Stage.BODY, WireCode.OFFSET_OVERRUN, 32),
    ("call data past body", u32_at(CALL, 37, len(CALL)), Stage.BODY, WireCode.OFFSET_OVERRUN, 40),
    (
        "bad signature",
        mutate(TX, len(TX) - 1, TX[-1] ^ 1),
        Stage.BODY,
        WireCode.BAD_SIGNATURE,
        len(TX) - 1,
    ),
    ("signed field", mutate(TX, 100, TX[100] ^ 1), Stage.BODY, WireCode.BAD_SIGNATURE, len(TX) - 1),
    ("trailing", TX + b"\x00", Stage.BODY, WireCode.TRAILING_DATA, len(TX)),
    ("truncated", TX[:-5], Stage.BODY, WireCode.TRUNCATED, len(TX) - 5),
    ("truncated in header", TX[:9], Stage.HEADER, WireCode.TRUNCATED, 9),
    ("empty stream", b"", Stage.MAGIC, WireCode.TRUNCATED, 0),
]


@pytest.mark.parametrize(
    ("name", "data", "stage", "code", "offset"), REJECTS, ids=[r[0] for r in REJECTS]
)
def test_rejects_at_earliest_byte(
    name: str, data: bytes, stage: Stage, code: WireCode, offset: int
) -> None:
    whole = feed(data, None)
    assert whole == feed(data, 1) == feed(data, 7)
    assert whole[-1] == ("rejected", stage, code, offset)


def test_reject_is_emitted_before_the_rest_arrives() -> None:
    bad = mutate(TX, 4, 0x7E)
    m = IngressMachine()
    m.receive_data(bad[:5])
    ev = m.next_event()
    assert isinstance(ev, FrameRejected) and ev.code == WireCode.UNKNOWN_KIND
    m.receive_data(bad[5:])  # ignored: the stream is being reset
    assert m.next_event() is END


def test_chain_id_mismatch() -> None:
    m = IngressMachine(chain_id=1)
    m.receive_data(TX)
    ev = m.next_event()
    assert isinstance(ev, FrameRejected)
    assert (ev.stage, ev.code, ev.offset) == (Stage.HEADER, WireCode.BAD_CHAIN, 15)
    assert ev.error().code == WireCode.BAD_CHAIN


def test_stage_reports_progress() -> None:
    m = IngressMachine()
    assert m.stage == Stage.MAGIC
    m.receive_data(TX[:4])
    assert m.stage == Stage.SCHEMA
    m.receive_data(TX[4:10])
    assert m.stage == Stage.HEADER
    m.receive_data(TX[10:30])
    assert m.stage == Stage.BODY
    m.receive_data(TX[30:])
    assert m.stage == Stage.NONE and m.finished


@pytest.mark.parametrize("declared", [0, 5, 11])
def test_an_embedded_frame_declaring_under_12_bytes_is_bad_length_at_its_byte_11(
    declared: int,
) -> None:
    """zap.md §6: an embedded frame is read as a tx stream of the rest of the payload."""
    from zapstack.conformance.frames import edge_block

    block = edge_block(ED, u32_at(TX, 8, declared) + CALL)
    payload_start = len(block) - 64 - len(TX) - len(CALL)
    for step in (None, 1, 7):
        assert feed(block, step, BLOCK_SCHEMAS) == [
            ("rejected", Stage.BODY, WireCode.BAD_FIELD, payload_start + 11)
        ]
