"""ML-DSA-65 wrapper, cross-checked against dilithium-py (a second FIPS 204 code base)."""

from __future__ import annotations

import pytest
from dilithium_py.ml_dsa import ML_DSA_65
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.crypto import mldsa
from zapstack.errors import LocalProtocolError

SEED = bytes(range(32))


def test_keygen_deterministic_and_sizes() -> None:
    sk, pk = mldsa.keygen(SEED)
    assert sk == SEED and mldsa.keygen(SEED) == (sk, pk)
    assert len(pk) == mldsa.PUBLIC_KEY_SIZE
    assert mldsa.public_key(sk) == pk


def test_public_key_matches_dilithium_py() -> None:
    """Same seed -> byte-identical public key in an independent implementation."""
    pk_ref, _ = ML_DSA_65.key_derive(SEED)
    assert mldsa.keygen(SEED)[1] == pk_ref


def test_signature_verifies_in_dilithium_py() -> None:
    sk, pk = mldsa.keygen(SEED)
    sig = mldsa.sign(sk, b"digest")
    assert len(sig) == mldsa.SIGNATURE_SIZE
    assert ML_DSA_65.verify(pk, b"digest", sig)
    assert not ML_DSA_65.verify(pk, b"digesT", sig)


def test_dilithium_py_signature_verifies_here() -> None:
    pk, sk_ref = ML_DSA_65.key_derive(SEED)
    sig = ML_DSA_65.sign(sk_ref, b"digest", ctx=b"ctx")
    assert mldsa.verify(pk, b"digest", sig, b"ctx")
    assert not mldsa.verify(pk, b"digest", sig)


def test_wrong_message_key_context() -> None:
    sk, pk = mldsa.keygen(SEED)
    sig = mldsa.sign(sk, b"m", b"c")
    assert mldsa.verify(pk, b"m", sig, b"c")
    assert not mldsa.verify(pk, b"m", sig)
    assert not mldsa.verify(pk, b"n", sig, b"c")
    assert not mldsa.verify(mldsa.keygen(bytes(32))[1], b"m", sig, b"c")


def test_bad_secret_key_and_context() -> None:
    with pytest.raises(LocalProtocolError):
        mldsa.sign(b"short", b"m")
    with pytest.raises(LocalProtocolError):
        mldsa.sign(SEED, b"m", b"x" * 256)


@settings(max_examples=40, deadline=None)
@given(sig=st.binary(max_size=40), cut=st.integers(0, mldsa.SIGNATURE_SIZE))
def test_garbage_never_raises(sig: bytes, cut: int) -> None:
    _, pk = mldsa.keygen(SEED)
    assert not mldsa.verify(pk, b"m", sig)
    assert not mldsa.verify(pk[:cut], b"m", b"\x00" * mldsa.SIGNATURE_SIZE)
