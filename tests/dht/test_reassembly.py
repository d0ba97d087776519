"""The reassembly buffer: chunks are verified before insertion, duplicates write nothing."""

from __future__ import annotations

from zapstack.dht import messages
from zapstack.dht.blocks import BlockLayout
from zapstack.dht.reassembly import Reassembly, chunk_verifies

from .conftest import BID, BLOCK, HLEN, LAYOUT, SERVED, N


def test_chunk_verifies_against_the_layout_commitment_only() -> None:
    m = SERVED.chunk_msg(N - 1)
    assert chunk_verifies(LAYOUT, m)
    assert not chunk_verifies(LAYOUT, messages.ChunkMsg(BID, N, m.data, m.proof))  # out of range
    assert not chunk_verifies(LAYOUT, messages.ChunkMsg(BID, m.index, m.data[:-1], m.proof))
    assert not chunk_verifies(LAYOUT, messages.ChunkMsg(BID, 0, m.data, m.proof))  # wrong index


def test_insert_counts_duplicates_and_the_block_needs_every_chunk() -> None:
    r = Reassembly()
    r.adopt(BLOCK[:HLEN], LAYOUT, b"")
    assert r.buf is not None and len(r.buf) == len(BLOCK) and r.have == set()
    for i in range(N):
        assert r.block(BID) is None
        assert r.insert(LAYOUT, SERVED.chunk_msg(i))
    assert not r.insert(LAYOUT, SERVED.chunk_msg(0))  # a duplicate writes nothing
    assert r.have == set(range(N)) and r.block(BID) == BLOCK


def test_a_header_with_the_same_commitment_keeps_the_chunks_in() -> None:
    r = Reassembly()
    r.adopt(BLOCK[:HLEN], LAYOUT, b"")
    r.insert(LAYOUT, SERVED.chunk_msg(2))
    r.adopt(BLOCK[:HLEN], LAYOUT, b"")
    assert r.have == {2}
    other = BlockLayout(LAYOUT.header_len, LAYOUT.payload_len, bytes(32), LAYOUT.trailer_len)
    r.adopt(BLOCK[:HLEN], other, b"")
    assert r.have == set()
