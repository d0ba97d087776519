"""Synthetic block shape, the expand generator and the serving side."""

from __future__ import annotations

import hashlib
import struct

import pytest

from zapstack.dht.blocks import ServedBlock, expand, synthetic_block, synthetic_layout
from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode
from zapstack.zap.merkle import CHUNK_SIZE, chunk_root, leaf_hash, verify_inclusion


def test_expand_known_answer() -> None:
    seed = b"\x00" * 32
    assert expand(seed, 40) == (
        hashlib.sha256(seed + b"\x00\x00\x00\x00").digest()
        + hashlib.sha256(seed + b"\x01\x00\x00\x00").digest()[:8]
    )
    assert expand(seed, 0) == b""


def test_synthetic_block_layout_and_commitment() -> None:
    block = synthetic_block(b"\x01" * 32, 64, 2 * CHUNK_SIZE + 5)
    lay = synthetic_layout(block[:64])
    assert block[:4] == b"ZSYN" and struct.unpack_from("<IQ", block, 4) == (64, 2 * CHUNK_SIZE + 5)
    assert lay.chunk_root == chunk_root(block[64:]) == block[16:48]
    assert len(block) == 64 + lay.payload_len


@pytest.mark.parametrize(
    ("header", "code"),
    [(b"ZSYN", WireCode.BAD_LENGTH), (b"XSYN" + bytes(44), WireCode.BAD_MAGIC)],
)
def test_malformed_synthetic_headers(header: bytes, code: WireCode) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        synthetic_layout(header)
    assert e.value.code is code
    h = bytearray(synthetic_block(b"\x02" * 32, 60, 10)[:60])
    with pytest.raises(RemoteProtocolError):
        synthetic_layout(bytes(h[:59]))


def test_served_block_answers_with_valid_proofs() -> None:
    block = synthetic_block(b"\x03" * 32, 50, 5 * CHUNK_SIZE + 1)
    lay = synthetic_layout(block[:50])
    s = ServedBlock(block, lay)
    assert s.chunk_count == 6 and s.header_msg().header == block[:50]
    for i in range(6):
        m = s.chunk_msg(i)
        assert verify_inclusion(leaf_hash(m.data), i, 6, m.proof, lay.chunk_root)
    assert len(s.chunk_msg(5).data) == 1
    with pytest.raises(RemoteProtocolError) as e:
        s.chunk_msg(6)
    assert e.value.code is WireCode.NOT_FOUND
    with pytest.raises(LocalProtocolError):
        ServedBlock(block[:-1], lay)
