import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.errors import LocalProtocolError, RemoteProtocolError, Stage, WireCode
from zapstack.zap import (
    MAX_CALL_DATA,
    Signer,
    SigScheme,
    build_block,
    build_call,
    build_transfer,
    parse_block,
    parse_tx,
)
from zapstack.zap.merkle import chunk_root

ED = Signer(SigScheme.ED25519, bytes(range(32)))
u64 = st.integers(0, 2**64 - 1)


@given(st.binary(min_size=32, max_size=32), u64, u64, u64, st.integers(0, 2**32 - 1))
def test_transfer_round_trips_every_field(
    recipient: bytes, amount: int, fee: int, nonce: int, chain: int
) -> None:
    frame = build_transfer(ED, recipient, amount, fee, nonce, chain)
    view = parse_tx(frame, chain_id=chain)
    assert (view.recipient, view.amount, view.fee, view.nonce) == (recipient, amount, fee, nonce)
    assert view.chain_id == chain
    assert bytes(view.pubkey) == ED.public_key
    assert view.sender == hashlib.sha256(ED.public_key).digest()
    assert view.total_length == len(frame) == len(view)
    assert view.scheme == SigScheme.ED25519
    assert bytes(view.signed_region) + bytes(view.signature) == frame


@settings(max_examples=30)
@given(st.binary(max_size=MAX_CALL_DATA), u64, u64)
def test_call_round_trips_data(data: bytes, fee: int, nonce: int) -> None:
    frame = build_call(ED, b"\x07" * 32, data, fee, nonce)
    view = parse_tx(frame)
    assert bytes(view.data) == data
    assert view.recipient == b"\x07" * 32
    assert (view.fee, view.nonce, view.amount) == (fee, nonce, 0)


def test_views_are_zero_copy_slices_of_one_buffer() -> None:
    frame = build_transfer(ED, b"r" * 32, 1, 2, 3)
    view = parse_tx(frame)
    assert view.buffer.obj is frame
    assert view.field("recipient").obj is frame
    assert view.buffer.readonly


def test_ml_dsa_65_signed_tx(pq_signer: Signer) -> None:
    frame = build_transfer(pq_signer, b"r" * 32, 10, 1, 0)
    view = parse_tx(frame)
    assert view.scheme == SigScheme.MLDSA65
    assert len(view.pubkey) == 1952 and len(view.signature) == 3309


def test_tx_id_excludes_signature_and_block_id_is_sha256(pq_signer: Signer) -> None:
    # ML-DSA-65 signing is randomised: two signatures, one tx id.
    a = build_transfer(pq_signer, b"r" * 32, 10, 1, 0)
    b = build_transfer(pq_signer, b"r" * 32, 10, 1, 0)
    assert a != b
    assert parse_tx(a).tx_id == parse_tx(b).tx_id
    block = build_block(
        ED, height=1, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=[a]
    )
    assert parse_block(block).block_id == hashlib.sha256(block).digest()


def test_block_round_trip_and_tx_views(pq_signer: Signer) -> None:
    txs = [build_transfer(ED, bytes([i]) * 32, i, i + 1, i) for i in range(5)]
    txs.append(build_call(pq_signer, b"t" * 32, b"x" * 100, 9, 0))
    block = build_block(
        ED, height=7, parent=b"p" * 32, timestamp_ms=1234, state_root=b"s" * 32, txs=txs
    )
    view = parse_block(block)
    assert (view.height, view.parent, view.timestamp_ms, view.state_root) == (
        7,
        b"p" * 32,
        1234,
        b"s" * 32,
    )
    assert view.tx_count == 6
    assert [bytes(t.buffer) for t in view.txs()] == txs
    assert view.chunk_root == chunk_root(b"".join(txs))
    for tx in view.txs():
        assert tx.buffer.obj is block  # tx views slice the block's buffer
    start, end = view.tx_spans()[2]
    assert block[start:end] == txs[2]
    assert block[view.payload_offset :].startswith(txs[0])


def test_empty_block() -> None:
    block = build_block(
        ED, height=0, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=[]
    )
    view = parse_block(block)
    assert view.tx_count == 0 and view.txs() == []


def test_block_with_wrong_chain_tx_is_rejected() -> None:
    tx = build_transfer(ED, b"r" * 32, 1, 1, 0, chain_id=5)
    block = build_block(
        ED, height=1, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=[tx], chain_id=6
    )
    with pytest.raises(RemoteProtocolError) as exc:
        parse_block(block)
    assert exc.value.code == WireCode.BAD_FIELD and exc.value.stage == Stage.BODY


def test_tampered_block_payload_is_rejected() -> None:
    txs = [build_transfer(ED, b"r" * 32, 1, 1, n) for n in range(3)]
    block = bytearray(
        build_block(ED, height=1, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=txs)
    )
    view = parse_block(bytes(block))
    s, _ = view.tx_spans()[1]
    block[s + 150] ^= 1  # inside tx 1's amount: roots no longer match
    with pytest.raises(RemoteProtocolError) as exc:
        parse_block(bytes(block))
    assert exc.value.code == WireCode.BAD_FIELD


def test_builder_rejects_bad_values() -> None:
    with pytest.raises(LocalProtocolError):
        build_transfer(ED, b"short", 1, 1, 1)
    with pytest.raises(LocalProtocolError):
        build_transfer(ED, b"r" * 32, -1, 1, 1)
    with pytest.raises(LocalProtocolError):
        build_call(ED, b"t" * 32, b"x" * (MAX_CALL_DATA + 1), 1, 1)


def _block(height: int, chain_id: int = 0x4C5558) -> bytes:
    txs = [build_transfer(ED, b"r" * 32, 1, 1, n, chain_id=chain_id) for n in range(3)]
    return build_block(
        ED,
        height=height,
        parent=bytes(32),
        timestamp_ms=0,
        state_root=bytes(32),
        txs=txs,
        chain_id=chain_id,
    )


def test_parse_block_remembers_equal_content() -> None:
    block = _block(101)
    first = parse_block(block)
    again = parse_block(bytes(bytearray(block)))  # another object, same content
    assert again is first
    assert parse_block(block, verify_signatures=False) is first  # fewer checks asked
    fresh = parse_block(bytearray(block))  # mutable input: never remembered
    assert fresh is not first and fresh.block_id == first.block_id


def test_parse_block_memo_never_skips_a_check_it_did_not_do() -> None:
    block = _block(102)
    forged = block[:-1] + bytes([block[-1] ^ 1])  # proposer signature broken
    lax = parse_block(forged, verify_signatures=False)
    assert lax.height == 102
    with pytest.raises(RemoteProtocolError) as exc:
        parse_block(forged)  # the lax view is not an answer to a strict parse
    assert exc.value.code == WireCode.BAD_SIGNATURE
    with pytest.raises(RemoteProtocolError):
        parse_block(forged)  # a rejection is not remembered either
    other = _block(103, chain_id=7)
    assert parse_block(other, chain_id=7).height == 103
    with pytest.raises(RemoteProtocolError) as exc:
        parse_block(other, chain_id=8)  # accepted for chain 7 only
    assert exc.value.code == WireCode.BAD_CHAIN


def test_parse_block_memo_is_bounded() -> None:
    blocks = [_block(200 + k) for k in range(20)]
    views = [parse_block(b) for b in blocks]
    assert parse_block(blocks[-1]) is views[-1]
    assert parse_block(blocks[0]) is not views[0]  # long evicted: parsed again
    assert parse_block(blocks[0]).block_id == views[0].block_id


def test_block_tx_views_carry_their_ids_and_are_made_once() -> None:
    block = _block(300)
    view = parse_block(block)
    first = view.txs()
    assert [t.tx_id for t in first] == [
        parse_tx(block[s:e], chain_id=0x4C5558).tx_id for s, e in view.tx_spans()
    ]
    assert [t.sender for t in first] == [hashlib.sha256(ED.public_key).digest()] * 3
    first.clear()  # the caller's list only
    again = view.txs()
    assert len(again) == 3 and again[1] is view.tx(1)
    assert [t.nonce for t in again] == [0, 1, 2]
