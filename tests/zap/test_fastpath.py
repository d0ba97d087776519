"""The whole-buffer fast path: it vouches only for well-formed frames, and the events stay equal.

Fed whole, a frame goes through :func:`check_whole` first; fed in pieces it
never does.  Every test here compares the two.
"""

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.zap import BLOCK_SCHEMAS, TX_SCHEMAS, SigScheme, parse_block, parse_tx
from zapstack.zap.fastpath import check_whole

from .conftest import BLOCK, CALL, TX, feed, mutate


def test_check_whole_vouches_for_well_formed_frames() -> None:
    for raw, schemas, view in (
        (TX, TX_SCHEMAS, parse_tx(TX)),
        (CALL, TX_SCHEMAS, parse_tx(CALL)),
        (BLOCK, BLOCK_SCHEMAS, parse_block(BLOCK)),
    ):
        whole = check_whole(raw, schemas, None)
        assert whole is not None
        schema, scheme, ends = whole
        assert (schema, scheme, ends) == (view.schema, SigScheme.ED25519, view._ends)
        assert check_whole(memoryview(raw), schemas, None) == whole


def test_check_whole_gives_up_on_anomalies() -> None:
    assert check_whole(TX[:20], TX_SCHEMAS, None) is None  # shorter than a header
    assert check_whole(TX[:-1], TX_SCHEMAS, None) is None  # truncated
    assert check_whole(TX + b"\x00", TX_SCHEMAS, None) is None  # trailing byte
    assert check_whole(BLOCK, TX_SCHEMAS, None) is None  # kind not on this stream
    assert check_whole(mutate(TX, 0, 0), TX_SCHEMAS, None) is None  # magic
    assert check_whole(mutate(TX, 20, 1), TX_SCHEMAS, None) is None  # reserved
    assert check_whole(TX, TX_SCHEMAS, 1) is None  # another chain


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


def test_sizes_are_precomputed_per_schema_object() -> None:
    transfer = TX_SCHEMAS[TX[4]]
    twin = dataclasses.replace(transfer)  # equal value, another object
    assert twin == transfer and twin is not transfer
    whole = check_whole(TX, {TX[4]: twin}, None)
    assert whole is not None and whole[0] is twin
    # a transfer's fields are all fixed-size: header 21, table 5 x 4, body
    # pubkey 32 + recipient 32 + three u64, Ed25519 signature 64 (zap.md)
    assert len(TX) == 21 + 20 + 32 + 32 + 3 * 8 + 64
    assert check_whole(TX, TX_SCHEMAS, None) is not None
