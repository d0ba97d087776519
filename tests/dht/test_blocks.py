"""Synthetic block shape, the expand generator and the serving side."""

from __future__ import annotations

import hashlib
import struct

import pytest

from zapstack.dht.blocks import (
    ServedBlock,
    expand,
    synthetic_block,
    synthetic_layout,
    zap_block_layout,
)
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


def _zap_block() -> bytes:
    from zapstack.zap import Signer, SigScheme, build_transfer
    from zapstack.zap.frames import build_block

    signer = Signer(SigScheme.ED25519, bytes(range(32)))
    txs = [build_transfer(signer, bytes([i % 256]) * 32, i, 1, i) for i in range(1200)]
    return build_block(
        signer, height=7, parent=bytes(32), timestamp_ms=1, state_root=bytes(32), txs=txs
    )


def test_zap_block_layout_matches_the_frame_parser_and_pulls_end_to_end() -> None:
    from zapstack.dht.chunk_actions import RequestChunk, RequestHeader
    from zapstack.dht.chunks import ChunkPull
    from zapstack.dht.wire import encode
    from zapstack.zap.frames import parse_block

    block = _zap_block()
    view = parse_block(block, verify_signatures=False)
    prefix = block[: view.payload_offset]
    lay = zap_block_layout(prefix)
    assert lay.chunk_root == view.chunk_root and lay.payload_len == len(view.payload)
    assert lay.trailer_len == 64 and lay.payload_len > 2 * CHUNK_SIZE  # multi-chunk
    served = ServedBlock(block, lay)
    assert served.header_msg().trailer == block[-64:]
    pull = ChunkPull(served.block_id, ["a", "b"], layout=zap_block_layout, now=0.0)
    while (a := pull.next_action()) is not None:
        if isinstance(a, RequestHeader):
            pull.receive_data(a.peer, -1, encode(served.header_msg()), 0.0)
        elif isinstance(a, RequestChunk):
            pull.receive_data(a.peer, a.index, encode(served.chunk_msg(a.index)), 0.0)
    assert pull.result == block


def test_zap_block_layout_rejects_non_blocks() -> None:
    block = _zap_block()
    for bad, code in [
        (b"\x00ZAP" + block[4:300], WireCode.BAD_MAGIC),
        (block[:4] + b"\x01" + block[5:300], WireCode.UNKNOWN_KIND),
        (block[:10], WireCode.TRUNCATED),
    ]:
        with pytest.raises(RemoteProtocolError) as e:
            zap_block_layout(bad)
        assert e.value.code is code
    with pytest.raises(RemoteProtocolError) as e:
        zap_block_layout(block[:300])  # not exactly the prefix
    assert e.value.code is WireCode.BAD_LENGTH
