"""DataCoalescer: a drain's data events come out merged per stream, nothing lost or moved."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zapstack.transport.coalesce import DataCoalescer

events = st.lists(
    st.tuples(st.sampled_from([0, 4, 8, 2]), st.binary(max_size=40), st.booleans()), max_size=30
)


@given(events)
def test_merged_per_stream_in_first_arrival_order(feed: list[tuple[int, bytes, bool]]) -> None:
    coalescer = DataCoalescer()
    model: dict[int, tuple[bytes, bool]] = {}  # a dict keeps first-insertion order
    for stream_id, data, fin in feed:
        coalescer.add(stream_id, data, fin)
        data0, fin0 = model.get(stream_id, (b"", False))
        model[stream_id] = (data0 + data, fin0 or fin)
    assert bool(coalescer) == bool(feed)
    assert coalescer.drain() == [(sid, data, fin) for sid, (data, fin) in model.items()]
    assert not coalescer and coalescer.drain() == []  # drained: holds nothing


def test_a_single_piece_is_handed_on_as_it_is() -> None:
    coalescer = DataCoalescer()
    piece = b"x" * 1000
    coalescer.add(0, piece, True)
    ((sid, data, fin),) = coalescer.drain()
    assert (sid, fin) == (0, True) and data is piece  # no copy for the common case


def test_byte_at_a_time_equals_whole() -> None:
    payload = bytes(range(256)) * 3
    coalescer = DataCoalescer()
    for i in range(len(payload)):
        coalescer.add(4, payload[i : i + 1], i == len(payload) - 1)
    assert coalescer.drain() == [(4, payload, True)]
