"""Stages 1-4 of the tx receive pipeline: the earliest bad byte, however bytes arrive."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.errors import Stage, WireCode
from zapstack.zap import (
    BLOCK_SCHEMAS,
    END,
    NEED_DATA,
    FrameAccepted,
    FrameRejected,
    IngressMachine,
    Signer,
    SigScheme,
    build_block,
    build_call,
    build_transfer,
)

ED = Signer(SigScheme.ED25519, bytes(range(32)))
TX = build_transfer(ED, b"r" * 32, 5, 2, 1)
CALL = build_call(ED, b"t" * 32, b"payload", 3, 4)
BLOCK = build_block(
    ED, height=3, parent=bytes(32), timestamp_ms=9, state_root=bytes(32), txs=[TX, CALL]
)


def drain(m: IngressMachine) -> list[object]:
    out: list[object] = []
    while True:
        ev = m.next_event()
        if ev is NEED_DATA or ev is END:
            return out
        out.append(ev)


def summary(events: list[object]) -> list[tuple[object, ...]]:
    res: list[tuple[object, ...]] = []
    for ev in events:
        if isinstance(ev, FrameAccepted):
            res.append(("accepted", bytes(ev.view.buffer)))
        else:
            assert isinstance(ev, FrameRejected)
            res.append(("rejected", ev.stage, ev.code, ev.offset))
    return res


def feed(data: bytes, step: int | None, schemas=None, fin: bool = True) -> list[tuple[object, ...]]:
    m = IngressMachine(schemas) if schemas is not None else IngressMachine()
    if step is None:
        m.receive_data(data)
    else:
        for i in range(0, len(data), step):
            m.receive_data(data[i : i + step])
    if fin:
        m.end_of_stream()
    return summary(drain(m))


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


def mutate(data: bytes, pos: int, value: int) -> bytes:
    b = bytearray(data)
    b[pos] = value
    return bytes(b)


def u32_at(data: bytes, pos: int, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into("<I", b, pos, value)
    return bytes(b)


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


@given(st.binary(max_size=300), st.integers(1, 50))
def test_any_bytes_same_verdict_whole_or_split(data: bytes, step: int) -> None:
    whole = feed(data, None)
    assert whole == feed(data, 1) == feed(data, step)
    assert len(whole) >= 1  # FIN always produces a verdict


@settings(max_examples=300)
@given(st.integers(0, len(TX) - 1), st.integers(1, 255))
def test_single_byte_flip_never_crashes(pos: int, xor: int) -> None:
    bad = mutate(TX, pos, TX[pos] ^ xor)
    events = feed(bad, None)
    assert events == feed(bad, 1)
    first = events[0]
    # a flipped byte is either rejected, or (never, for a signed tx) a different valid frame
    assert first[0] == "rejected" or first[1] != TX


@settings(max_examples=100)
@given(st.integers(0, len(BLOCK) - 1), st.integers(1, 255))
def test_block_byte_flip_rejected_same_way(pos: int, xor: int) -> None:
    bad = mutate(BLOCK, pos, BLOCK[pos] ^ xor)
    events = feed(bad, None, BLOCK_SCHEMAS)
    assert events == feed(bad, 3, BLOCK_SCHEMAS)
    assert events[0][0] == "rejected"


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
