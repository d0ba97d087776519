"""The passive pull core: verification, insertion and blame without any scheduling."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.dht import messages
from zapstack.dht.blocks import synthetic_layout
from zapstack.dht.chunk_actions import PullComplete
from zapstack.dht.chunks import ChunkPull
from zapstack.dht.pullcore import PullCore
from zapstack.zap.merkle import CHUNK_SIZE

from .conftest import BID, BLOCK, HLEN, SERVED, N


def test_the_core_alone_asks_nothing_and_completes_from_delivered_chunks() -> None:
    core = PullCore(BID, layout=synthetic_layout, now=0.0, header=BLOCK[:HLEN])
    assert core.next_action() is None and core.missing == tuple(range(N))
    for i in reversed(range(N)):
        core.deliver("p", SERVED.chunk_msg(i), 0.0)
    assert core.result == BLOCK and core.done
    assert core.next_action() == PullComplete(BID, BLOCK)
    assert core.next_action() is None and not core.blamed


def _arrivals() -> st.SearchStrategy[list[tuple[int, str]]]:
    kinds = st.sampled_from(["good", "good", "flip", "proof", "short", "index"])
    return st.lists(st.tuples(st.integers(0, N - 1), kinds), max_size=40)


def _message(index: int, kind: str) -> messages.ChunkMsg:
    m = SERVED.chunk_msg(index)
    if kind == "flip":
        return messages.ChunkMsg(BID, index, m.data[:-1] + bytes([m.data[-1] ^ 0x80]), m.proof)
    if kind == "proof":
        return messages.ChunkMsg(BID, index, m.data, (bytes(32), *m.proof[1:]))
    if kind == "short":
        return messages.ChunkMsg(BID, index, m.data[:-1], m.proof)
    if kind == "index":
        return messages.ChunkMsg(BID, (index + 1) % N, m.data, m.proof)
    return m


@settings(max_examples=40, deadline=None)
@given(_arrivals(), st.permutations(range(N)))
def test_reassembly_is_order_independent_and_bogus_never_inserted(
    noise: list[tuple[int, str]], order: list[int]
) -> None:
    pull = ChunkPull(BID, [], layout=synthetic_layout, now=0.0, header=BLOCK[:HLEN], schedule=False)
    schedule = [(i, "good") for i in order]
    for j, item in enumerate(noise):
        schedule.insert(j % (len(schedule) + 1), item)
    for i, kind in schedule:
        peer = "honest" if kind == "good" else f"adv-{kind}"
        pull.deliver(peer, _message(i, kind), 0.0)
        buf = pull._reassembly.buf
        assert buf is not None
        for k in pull.have:  # every inserted chunk is the true chunk
            at = HLEN + k * CHUNK_SIZE
            assert buf[at : at + CHUNK_SIZE] == BLOCK[at : at + CHUNK_SIZE]
    assert pull.result == BLOCK
    assert "honest" not in pull.blamed
