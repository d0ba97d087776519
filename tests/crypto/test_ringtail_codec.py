"""Rounding and fixed-width encodings, including malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.crypto.ringtail.codec import (
    decode_mod_q,
    decode_signed48,
    encode_mod_q,
    encode_signed48,
    pack_bits,
    packed_len,
    round_bits,
    unpack_bits,
    unround_bits,
)
from zapstack.crypto.ringtail.ring import Q, center, submod
from zapstack.errors import InvalidCert


@given(
    st.integers(1, 49).flatmap(
        lambda w: st.tuples(st.just(w), st.lists(st.integers(0, (1 << w) - 1), max_size=40))
    )
)
def test_pack_roundtrip(case: tuple[int, list[int]]) -> None:
    width, values = case
    data = pack_bits(np.array(values, dtype=np.int64), width)
    assert len(data) == packed_len(len(values), width)
    assert unpack_bits(data, len(values), width).tolist() == values


def test_pack_is_lsb_first() -> None:
    assert pack_bits(np.array([1, 0, 3]), 2) == bytes([0b110001])


def test_unpack_rejects_padding_and_length() -> None:
    data = bytearray(pack_bits(np.array([5, 6, 7]), 3))  # 9 bits -> 2 bytes
    data[-1] |= 0x80
    with pytest.raises(InvalidCert):
        unpack_bits(bytes(data), 3, 3)
    with pytest.raises(InvalidCert):
        unpack_bits(b"\x00", 3, 3)


def test_pack_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        pack_bits(np.array([8]), 3)


@given(st.lists(st.integers(0, Q - 1), min_size=1, max_size=50), st.sampled_from([29, 30]))
def test_rounding_error_is_small(values: list[int], d: int) -> None:
    x = np.array(values, dtype=np.int64)
    y = round_bits(x, d)
    assert int(y.max()) < 1 << (48 - d)
    err = center(submod(x, unround_bits(y, d)))
    assert int(np.abs(err).max()) <= (1 << (d - 1)) + 18945


@given(st.lists(st.integers(0, Q - 1), max_size=30))
def test_mod_q_roundtrip(values: list[int]) -> None:
    data = encode_mod_q(np.array(values, dtype=np.int64))
    assert len(data) == 7 * len(values)
    assert decode_mod_q(data, len(values)).tolist() == values


def test_mod_q_rejects_unreduced_and_length() -> None:
    with pytest.raises(InvalidCert):
        decode_mod_q(Q.to_bytes(7, "little"), 1)
    with pytest.raises(InvalidCert):
        decode_mod_q(b"\x00" * 6, 1)


@given(st.lists(st.integers(-(1 << 47), (1 << 47) - 1), max_size=30))
def test_signed48_roundtrip(values: list[int]) -> None:
    data = encode_signed48(np.array(values, dtype=np.int64))
    assert decode_signed48(data, len(values)).tolist() == values


def test_signed48_rejects() -> None:
    with pytest.raises(ValueError):
        encode_signed48(np.array([1 << 47]))
    with pytest.raises(InvalidCert):
        decode_signed48(b"\x00" * 5, 1)
