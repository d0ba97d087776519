"""BLS12-381 PoP wrapper: determinism, PoP, aggregation, garbage never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.crypto import bls
from zapstack.errors import LocalProtocolError

SEEDS = [bytes([i]) * 32 for i in range(1, 5)]


def test_keygen_is_deterministic_and_sizes() -> None:
    sk, pk = bls.keygen(SEEDS[0])
    assert bls.keygen(SEEDS[0]) == (sk, pk)
    assert len(sk) == bls.SECRET_KEY_SIZE and len(pk) == bls.PUBLIC_KEY_SIZE
    assert bls.public_key(sk) == pk
    assert bls.keygen(SEEDS[1])[1] != pk


def test_short_seed_rejected() -> None:
    with pytest.raises(LocalProtocolError):
        bls.keygen(b"\x00" * 31)


def test_sign_verify_and_wrong_message() -> None:
    sk, pk = bls.keygen(SEEDS[0])
    sig = bls.sign(sk, b"block")
    assert len(sig) == bls.SIGNATURE_SIZE
    assert bls.verify(pk, b"block", sig)
    assert not bls.verify(pk, b"other", sig)
    assert not bls.verify(bls.keygen(SEEDS[1])[1], b"block", sig)


def test_pop_binds_the_key() -> None:
    sk0, pk0 = bls.keygen(SEEDS[0])
    _, pk1 = bls.keygen(SEEDS[1])
    assert bls.pop_verify(pk0, bls.pop_prove(sk0))
    assert not bls.pop_verify(pk1, bls.pop_prove(sk0))
    # a PoP is not a signature over an ordinary message
    assert not bls.verify(pk0, pk0, bls.pop_prove(sk0))


def test_fast_aggregate_verify() -> None:
    keys = [bls.keygen(s) for s in SEEDS]
    sigs = [bls.sign(sk, b"digest") for sk, _ in keys]
    agg = bls.aggregate(sigs)
    pks = [pk for _, pk in keys]
    assert bls.fast_aggregate_verify(pks, b"digest", agg)
    assert not bls.fast_aggregate_verify(pks[:-1], b"digest", agg)
    assert not bls.fast_aggregate_verify(pks, b"digesT", agg)
    assert not bls.fast_aggregate_verify([], b"digest", agg)


def test_aggregate_rejects_garbage() -> None:
    with pytest.raises(LocalProtocolError):
        bls.aggregate([])
    with pytest.raises(LocalProtocolError):
        bls.aggregate([b"\x01" * 96])


@settings(max_examples=60, deadline=None)
@given(pk=st.binary(max_size=60), sig=st.binary(max_size=110))
def test_garbage_never_raises(pk: bytes, sig: bytes) -> None:
    assert bls.verify(pk, b"m", sig) in (True, False)
    assert bls.pop_verify(pk, sig) in (True, False)
    assert bls.fast_aggregate_verify([pk], b"m", sig) in (True, False)
