"""Admit receipts on the submitter: FrameSplitter fed whole, byte by byte and any split."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.node.adapters.mempool_receipts import FrameSplitter

from ...mempool.conftest import tx_bytes

FRAMES = [tx_bytes(5, i, 2, 40 * i) if i % 2 else tx_bytes(5, i, 2) for i in range(6)]


def split_all(chunks: list[bytes]) -> list[bytes]:
    splitter = FrameSplitter()
    out = [f for c in chunks for f in splitter.feed(c)]
    splitter.end()
    return out


def test_splitter_whole_and_byte_at_a_time() -> None:
    stream = b"".join(FRAMES)
    assert split_all([stream]) == FRAMES
    assert split_all([stream[i : i + 1] for i in range(len(stream))]) == FRAMES
    assert split_all([]) == []


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, len(b"".join(FRAMES))), max_size=12))
def test_splitter_any_split(cuts: list[int]) -> None:
    stream = b"".join(FRAMES)
    points = [0, *sorted(cuts), len(stream)]
    assert split_all([stream[a:b] for a, b in itertools.pairwise(points)]) == FRAMES


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (FRAMES[0][:8] + (20).to_bytes(4, "little"), WireCode.BAD_LENGTH),
        (FRAMES[0][:8] + (1 << 20).to_bytes(4, "little"), WireCode.BAD_LENGTH),
        (FRAMES[0] + FRAMES[1][:-1], WireCode.TRUNCATED),
    ],
)
def test_splitter_rejects(data: bytes, code: WireCode) -> None:
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        with pytest.raises(RemoteProtocolError) as err:
            split_all(chunks)
        assert err.value.code is code
