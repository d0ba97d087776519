"""SLH-DSA wrapper: deterministic keys, pqcrypto sign, cross-check with pure ``slhdsa``."""

from __future__ import annotations

import pytest
import slhdsa as pure

from zapstack.crypto import slhdsa
from zapstack.crypto.slhdsa import PARAMS, ParamSet
from zapstack.errors import ConfigError, LocalProtocolError

FAST = ParamSet.SHA2_128F
SEED = bytes(range(32))


def test_keygen_deterministic_and_well_formed() -> None:
    sk, pk = slhdsa.keygen(SEED, FAST)
    assert slhdsa.keygen(SEED, FAST) == (sk, pk)
    p = PARAMS[FAST]
    assert len(sk) == p.secret_key_size and len(pk) == p.public_key_size
    assert sk[2 * p.n :] == pk  # FIPS 205: SK = SK.seed || SK.prf || PK.seed || PK.root
    assert slhdsa.keygen(bytes(32), FAST)[1] != pk
    # the pure implementation accepts the key as a valid FIPS 205 key pair (root recomputed)
    n = p.n
    pure.SecretKey((sk[:n], sk[n : 2 * n], sk[2 * n : 3 * n], sk[3 * n :]), p.pure)


def test_sign_verify_roundtrip() -> None:
    sk, pk = slhdsa.keygen(SEED, FAST)
    sig = slhdsa.sign(sk, b"digest", FAST)
    assert len(sig) == PARAMS[FAST].signature_size
    assert slhdsa.verify(pk, b"digest", sig, FAST)
    assert not slhdsa.verify(pk, b"digesT", sig, FAST)
    bad = bytearray(sig)
    bad[100] ^= 1
    assert not slhdsa.verify(pk, b"digest", bytes(bad), FAST)


def test_pqcrypto_signature_verifies_in_pure_implementation() -> None:
    """Independent FIPS 205 code agrees (pure variant, empty context)."""
    sk, pk = slhdsa.keygen(SEED, FAST)
    sig = slhdsa.sign(sk, b"digest", FAST)
    n = PARAMS[FAST].n
    ref = pure.PublicKey((pk[:n], pk[n:]), PARAMS[FAST].pure)
    assert ref.verify_pure(b"digest", sig)
    assert not ref.verify_pure(b"digesT", sig)


def test_labels_roundtrip_and_unknown() -> None:
    for ps in ParamSet:
        assert ParamSet.from_label(ps.label) is ps
    assert ParamSet.from_label("SLH-DSA-SHAKE-192s") is ParamSet.SHAKE_192S
    with pytest.raises(ConfigError, match="unknown SLH-DSA parameter set"):
        ParamSet.from_label("sphincs")


def test_garbage_and_bad_keys() -> None:
    _, pk = slhdsa.keygen(SEED, FAST)
    assert not slhdsa.verify(pk, b"m", b"", FAST)
    assert not slhdsa.verify(pk, b"m", b"\x00" * PARAMS[FAST].signature_size, FAST)
    assert not slhdsa.verify(pk[:-1], b"m", b"\x00" * PARAMS[FAST].signature_size, FAST)
    with pytest.raises(LocalProtocolError):
        slhdsa.sign(b"short", b"m", FAST)
    with pytest.raises(LocalProtocolError):
        slhdsa.keygen(b"short", FAST)
