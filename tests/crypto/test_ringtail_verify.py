"""Signature encoding and verification: forgeries and malformed bytes fail cleanly."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.crypto.ringtail import (
    GroupPublicKey,
    Signature,
    deal,
    sign_in_process,
    verify,
    verify_signature,
)
from zapstack.errors import InvalidCert

MSG = b"block transcript digest for corona!"
SID = b"sid-verify"
SIG_LEN = 15648
Z_AT = 32
DELTA_AT = 32 + 7 * 256 * 6


@pytest.fixture(scope="module")
def signed() -> tuple[GroupPublicKey, bytes]:
    pk, shares = deal(5, 3, b"verify-tests-dealer-seed-0000001")
    return pk, sign_in_process(shares[1:4], MSG, SID, b"v" * 32)


def _flip(sig: bytes, at: int, bit: int = 1) -> bytes:
    out = bytearray(sig)
    out[at] ^= bit
    return bytes(out)


def test_valid_and_roundtrip(signed: tuple[GroupPublicKey, bytes]) -> None:
    pk, sig = signed
    assert len(sig) == SIG_LEN and verify(pk, MSG, sig)
    decoded = Signature.from_bytes(sig)
    assert decoded.to_bytes() == sig and decoded == Signature.from_bytes(sig)
    assert verify_signature(pk, MSG, decoded)
    assert verify(pk, bytearray(MSG), memoryview(sig))


@pytest.mark.parametrize("at", [0, 17, 31])
def test_flipped_challenge_fails(signed: tuple[GroupPublicKey, bytes], at: int) -> None:
    pk, sig = signed
    assert not verify(pk, MSG, _flip(sig, at))


@pytest.mark.parametrize("at", [Z_AT, Z_AT + 1, Z_AT + 5000, DELTA_AT - 1])
def test_flipped_z_fails(signed: tuple[GroupPublicKey, bytes], at: int) -> None:
    pk, sig = signed
    assert not verify(pk, MSG, _flip(sig, at))


@pytest.mark.parametrize("at", [DELTA_AT, DELTA_AT + 1000, SIG_LEN - 2])
def test_flipped_delta_fails(signed: tuple[GroupPublicKey, bytes], at: int) -> None:
    pk, sig = signed
    assert not verify(pk, MSG, _flip(sig, at))


def test_padding_bits_of_delta_are_rejected(signed: tuple[GroupPublicKey, bytes]) -> None:
    # 2048 values x 19 bits = 38912 bits = exactly 4864 bytes: no padding, so the
    # top bit of the last byte belongs to the last value and changes it.
    pk, sig = signed
    assert not verify(pk, MSG, _flip(sig, SIG_LEN - 1, 0x80))


def test_other_message_and_other_key_fail(signed: tuple[GroupPublicKey, bytes]) -> None:
    pk, sig = signed
    assert not verify(pk, MSG + b"x", sig)
    assert not verify(pk, b"", sig)
    other = deal(5, 3, b"some-other-dealer-seed-000000001")[0]
    assert not verify(other, MSG, sig)


def test_every_prefix_and_extension_rejected(signed: tuple[GroupPublicKey, bytes]) -> None:
    pk, sig = signed
    for cut in range(len(sig)):  # byte at a time
        assert not verify(pk, MSG, sig[:cut])
    for cut in range(0, len(sig), 499):
        with pytest.raises(InvalidCert):
            Signature.from_bytes(sig[:cut])
    assert not verify(pk, MSG, sig + b"\x00")


def test_oversized_z_or_norm_rejected(signed: tuple[GroupPublicKey, bytes]) -> None:
    pk, sig = signed
    good = Signature.from_bytes(sig)
    big_z = good.z.copy()
    big_z[0, 0] = -(1 << 47)
    assert not verify_signature(pk, MSG, Signature(good.c_tilde, big_z, good.delta))
    scaled = Signature(good.c_tilde, good.z * 20, good.delta)
    assert not verify_signature(pk, MSG, scaled)
    bad_shape = Signature(good.c_tilde, good.z[:3], good.delta)
    assert not verify_signature(pk, MSG, bad_shape)


@settings(max_examples=15, deadline=None)
@given(st.binary(max_size=32))
def test_garbage_never_raises(signed: tuple[GroupPublicKey, bytes], seed: bytes) -> None:
    blob = hashlib.shake_256(seed).digest(SIG_LEN)
    assert verify(signed[0], MSG, blob) is False


@settings(max_examples=25, deadline=None)
@given(st.integers(0, SIG_LEN - 1), st.integers(1, 255))
def test_any_altered_byte_fails(signed: tuple[GroupPublicKey, bytes], at: int, bits: int) -> None:
    pk, sig = signed
    assert verify(pk, MSG, _flip(sig, at, bits)) is False


def test_wrong_types_return_false(signed: tuple[GroupPublicKey, bytes]) -> None:
    pk, sig = signed
    assert verify(pk, MSG, "not bytes") is False  # type: ignore[arg-type]
    assert verify(pk, "msg", sig) is False  # type: ignore[arg-type]
    assert verify(pk, MSG, np.zeros(3)) is False  # type: ignore[arg-type]
