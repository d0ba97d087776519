"""Bootstrap readers: every reader fed whole, byte at a time and in random splits;
malformed input raises RemoteProtocolError with the documented code."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.bootstrap.devchain import USERS
from zapstack.bootstrap.readers import (
    BlockPushReader,
    ChunkReplyReader,
    RangeRecord,
    RangeReplyReader,
    TxGossipReader,
    VoteReader,
)
from zapstack.bootstrap.wire import (
    encode_chunk,
    encode_chunk_py,
    encode_range_record,
    encode_vote,
)
from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.zap import build_transfer
from zapstack.zapdb import StateChunk, verify_chunk

from .conftest import state_chunks

try:
    from zapstack.zapdb import _smtfast
except ImportError:  # pragma: no cover - the extension is optional
    _smtfast = None  # type: ignore[assignment]


def _chunks(tmp: Path, depth: int) -> tuple[bytes, list[StateChunk]]:
    return state_chunks(tmp / "w", depth, keys=60, spread=7)


def _feed(reader, data: bytes, splits: list[int]) -> list[object]:  # type: ignore[no-untyped-def]
    out, pos = [], 0
    for step in [*splits, len(data)]:
        reader.receive_data(data[pos : pos + max(1, step)])
        pos += max(1, step)
        while (rec := reader.next_record()) is not None:
            out.append(rec)
        if pos >= len(data):
            break
    return out


def test_chunk_reply_whole_and_byte_at_a_time(tmp_path: Path) -> None:
    root, chunks = _chunks(tmp_path, 3)
    data = b"".join(encode_chunk(c) for c in chunks[2:6])
    for splits in ([], [1] * len(data)):
        reader = ChunkReplyReader(3, 2, 4)
        got = _feed(reader, data, splits)
        reader.end_of_stream()
        assert got == chunks[2:6]
        assert all(verify_chunk(root, c) for c in got)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 200), max_size=40))
def test_chunk_reply_any_split(tmp_path_factory: pytest.TempPathFactory, splits: list[int]) -> None:
    _, chunks = _chunks(tmp_path_factory.mktemp("c"), 2)
    data = b"".join(encode_chunk(c) for c in chunks)
    reader = ChunkReplyReader(2, 0, 4)
    assert _feed(reader, data, splits) == chunks
    reader.end_of_stream()


def test_chunk_reply_defects(tmp_path: Path) -> None:
    _, chunks = _chunks(tmp_path, 2)
    good = encode_chunk(chunks[1])
    cases = [
        (ChunkReplyReader(2, 0, 1), good, WireCode.BAD_FIELD),  # wrong index
        (ChunkReplyReader(2, 1, 1), good + good, WireCode.TRAILING_DATA),
        (ChunkReplyReader(2, 1, 1), (3).to_bytes(4, "little"), WireCode.BAD_LENGTH),
        (ChunkReplyReader(0, 1, 1), good, WireCode.BAD_FIELD_COUNT),  # siblings > depth
    ]
    for reader, data, code in cases:
        with pytest.raises(RemoteProtocolError) as exc:
            reader.receive_data(data)
            while reader.next_record() is not None:
                pass
        assert exc.value.code == code
    short = ChunkReplyReader(2, 1, 2)
    short.receive_data(good)
    assert short.next_record() is not None
    with pytest.raises(RemoteProtocolError) as exc:
        short.end_of_stream()
    assert exc.value.code == WireCode.TRUNCATED


def test_range_reply_and_pushes() -> None:
    tx = build_transfer(USERS[0], bytes(32), 1, 1, 0)
    reply = (5).to_bytes(8, "little") + encode_range_record(b"blk", b"cert")
    for splits in ([], [1] * len(reply)):
        reader = RangeReplyReader(1)
        assert _feed(reader, reply, splits) == [5, RangeRecord(b"blk", b"cert")]
        reader.end_of_stream()
    gossip = tx + tx
    for splits in ([], [1] * len(gossip)):
        assert _feed(TxGossipReader(), gossip, splits) == [tx, tx]
    votes = encode_vote(b"a") + encode_vote(b"bc")
    assert _feed(VoteReader(), votes, [1] * len(votes)) == [b"a", b"bc"]
    push = BlockPushReader()
    _feed(push, tx + b"CERT", [1] * 40)
    assert push.finish() == RangeRecord(tx, b"CERT")  # any frame delimits by total_length
    bad = TxGossipReader()
    bad.receive_data(b"\x7fZAQ")
    with pytest.raises(RemoteProtocolError) as exc:
        bad.next_record()
    assert (exc.value.code, exc.value.offset) == (WireCode.BAD_MAGIC, 3)
    cut = TxGossipReader()
    cut.receive_data(tx[:30])
    assert cut.next_record() is None
    with pytest.raises(RemoteProtocolError) as exc:
        cut.end_of_stream()
    assert exc.value.code == WireCode.TRUNCATED
    with pytest.raises(RemoteProtocolError) as exc:
        v = VoteReader()
        v.receive_data(bytes(4))
        v.next_record()
    assert exc.value.code == WireCode.BAD_LENGTH


# ------------------------------------------------------------ the C parser vs the reference

_entry = st.tuples(st.binary(min_size=0, max_size=12), st.binary(max_size=20))


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """Chunk record bodies: well-formed ones, then mangled (cut, flipped, extended)."""
    entries = draw(st.lists(_entry, max_size=6))
    sibs = draw(st.lists(st.binary(min_size=32, max_size=32), max_size=5))
    term = draw(st.one_of(st.none(), st.binary(min_size=64, max_size=64)))
    body = encode_chunk_py(StateChunk(5, 3, tuple(entries), tuple(sibs), term))[4:]
    raw = bytearray(body)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(raw)))
        kind = draw(st.sampled_from(["cut", "flip", "add"]))
        if kind == "cut":
            del raw[at:]
        elif kind == "flip" and at < len(raw):
            raw[at] ^= draw(st.integers(1, 255))
        else:
            raw[at:at] = draw(st.binary(min_size=1, max_size=4))
    if len(raw) < 8:
        raw += bytes(8 - len(raw))
    raw[0:4] = (3).to_bytes(4, "little")  # the index the reader expects
    return bytes(raw)


def _outcome(parse, body: bytes) -> object:  # type: ignore[no-untyped-def]
    try:
        return parse(body, 100)
    except RemoteProtocolError as exc:
        return (str(exc), exc.code, exc.offset)


@pytest.mark.skipif(_smtfast is None, reason="the C extension is not built")
@settings(max_examples=400, deadline=None)
@given(_bodies())
def test_c_chunk_parser_equals_the_python_reference(body: bytes) -> None:
    reader = ChunkReplyReader(5, 3, 1)
    fast = _outcome(lambda b, base: reader._body(memoryview(b), base), body)
    slow = _outcome(reader._body_py, body)
    assert fast == slow
