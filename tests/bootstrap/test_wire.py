"""Bootstrap requests and record encoders: round trips, documented examples; malformed
requests raise RemoteProtocolError with the documented code."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.bootstrap.wire import (
    LATEST,
    RangeRequest,
    StateRequest,
    decode_range_request,
    decode_state_request,
    encode_chunk,
    encode_chunk_py,
    encode_range_request,
    encode_state_request,
)
from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.zapdb import StateChunk

ROOT = hashlib.sha256(b"root").digest()


def test_requests_round_trip_and_examples() -> None:
    req = StateRequest(ROOT, 4, 4, 4)
    data = encode_state_request(req)
    assert data == b"\x01" + ROOT + bytes([4]) + (4).to_bytes(4, "little") * 2
    assert decode_state_request(data) == req
    rr = RangeRequest(7, LATEST, 1)
    assert encode_range_request(rr).hex() == "0107ffffffffffffffff01000000"
    assert decode_range_request(encode_range_request(rr)) == rr


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (encode_state_request(StateRequest(ROOT, 4, 0, 1))[:-1], WireCode.TRUNCATED),
        (encode_state_request(StateRequest(ROOT, 4, 0, 1)) + b"x", WireCode.TRAILING_DATA),
        (b"\x02" + encode_state_request(StateRequest(ROOT, 4, 0, 1))[1:], WireCode.BAD_VERSION),
        (encode_state_request(StateRequest(ROOT, 25, 0, 1)), WireCode.BAD_FIELD),
        (encode_state_request(StateRequest(ROOT, 4, 0, 0)), WireCode.BAD_FIELD),
        (encode_state_request(StateRequest(ROOT, 4, 15, 2)), WireCode.BAD_FIELD),
    ],
)
def test_bad_state_requests(data: bytes, code: WireCode) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        decode_state_request(data)
    assert exc.value.code == code


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (encode_range_request(RangeRequest(8, 1, 1)), WireCode.BAD_FLAGS),
        (encode_range_request(RangeRequest(0, 1, 257)), WireCode.BAD_FIELD),
        (encode_range_request(RangeRequest(0, 1, 1))[:13], WireCode.TRUNCATED),
    ],
)
def test_bad_range_requests(data: bytes, code: WireCode) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        decode_range_request(data)
    assert exc.value.code == code


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.binary(max_size=300)), max_size=8),
    st.lists(st.binary(min_size=32, max_size=32), max_size=24),
    st.one_of(st.none(), st.binary(min_size=64, max_size=64)),
)
def test_chunk_encoder_equals_the_python_reference(
    index: int, entries: list[tuple[bytes, bytes]], sibs: list[bytes], term: bytes | None
) -> None:
    chunk = StateChunk(24, index % (1 << 24), tuple(entries), tuple(sibs), term)
    want = encode_chunk_py(chunk)
    assert encode_chunk(chunk) == want
    body = want[4:]  # the layout by hand: u32 len | index | count | entries | sibs | terminal
    assert int.from_bytes(want[:4], "little") == len(body)
    assert body[:8] == (chunk.index).to_bytes(4, "little") + len(entries).to_bytes(4, "little")
    assert body.endswith(b"\x00" if term is None else b"\x01" + term)
