"""Dealer key generation and the key encodings."""

from __future__ import annotations

import numpy as np
import pytest

from zapstack.crypto.ringtail import PARAMS, GroupPublicKey, KeyShare, deal
from zapstack.crypto.ringtail.codec import unround_bits
from zapstack.crypto.ringtail.keys import expanded
from zapstack.crypto.ringtail.ring import Q, center, intt, matvec_ntt, ntt, submod
from zapstack.crypto.ringtail.shamir import reconstruct
from zapstack.errors import InvalidCert, LocalProtocolError

SEED = b"ringtail-test-dealer-seed-000001"


@pytest.fixture(scope="module")
def dealt() -> tuple[GroupPublicKey, list[KeyShare]]:
    return deal(5, 3, SEED)


def test_deterministic(dealt: tuple[GroupPublicKey, list[KeyShare]]) -> None:
    pk, shares = dealt
    pk2, shares2 = deal(5, 3, SEED)
    assert pk == pk2 and [s.to_bytes() for s in shares] == [s.to_bytes() for s in shares2]
    assert deal(5, 3, b"another-seed-of-thirty-two-bytes")[0] != pk


def test_public_key_is_a_rounded_lwe_sample(dealt: tuple[GroupPublicKey, list[KeyShare]]) -> None:
    pk, shares = dealt
    s = reconstruct({sh.index: sh.secret_vector() for sh in shares[:3]})
    assert int(np.abs(center(s)).max()) <= 13  # short: |s| <= round(2 sigma_e)
    exp = expanded(pk)
    a_s = intt(matvec_ntt(exp.a_hat, ntt(s)))
    resid = center(submod(unround_bits(exp.b_tilde, PARAMS.xi), a_s))
    assert int(np.abs(resid).max()) <= (1 << 29) + 18945 + 13  # rounding + |e|


def test_pair_keys_are_shared_and_distinct(dealt: tuple[GroupPublicKey, list[KeyShare]]) -> None:
    _, shares = dealt
    keys = set()
    for a in shares:
        for b in shares:
            if a.index < b.index:
                assert a.pair_key(b.index) == b.pair_key(a.index)
                keys.add(a.pair_key(b.index))
    assert len(keys) == 10
    with pytest.raises(LocalProtocolError):
        shares[0].pair_key(1)


def test_repr_hides_secrets(dealt: tuple[GroupPublicKey, list[KeyShare]]) -> None:
    _, shares = dealt
    text = repr(shares[0])
    assert "secret" not in text and "nonce_key" not in text and "pair_keys" not in text


def test_roundtrips(dealt: tuple[GroupPublicKey, list[KeyShare]]) -> None:
    pk, shares = dealt
    assert GroupPublicKey.from_bytes(pk.to_bytes()) == pk
    assert len(pk.to_bytes()) == 4640
    for share in shares:
        assert KeyShare.from_bytes(share.to_bytes()) == share


def test_truncated_and_extended_encodings_rejected(
    dealt: tuple[GroupPublicKey, list[KeyShare]],
) -> None:
    pk, shares = dealt
    for blob, decode in (
        (pk.to_bytes(), GroupPublicKey.from_bytes),
        (shares[1].to_bytes(), KeyShare.from_bytes),
    ):
        for cut in range(0, len(blob), 97):  # byte-at-a-time prefixes, strided
            with pytest.raises(InvalidCert):
                decode(blob[:cut])
        with pytest.raises(InvalidCert):
            decode(blob[:-1])
        with pytest.raises(InvalidCert):
            decode(blob + b"\x00")


def test_share_field_corruption_rejected(dealt: tuple[GroupPublicKey, list[KeyShare]]) -> None:
    blob = bytearray(dealt[1][0].to_bytes())
    bad_version = bytes([2]) + bytes(blob[1:])
    with pytest.raises(InvalidCert):
        KeyShare.from_bytes(bad_version)
    bad_t = bytes(blob[:5]) + (9).to_bytes(2, "big") + bytes(blob[7:])
    with pytest.raises(InvalidCert):
        KeyShare.from_bytes(bad_t)
    sec_at = 7 + 4640
    unreduced = bytes(blob[:sec_at]) + Q.to_bytes(7, "little") + bytes(blob[sec_at + 7 :])
    with pytest.raises(InvalidCert):
        KeyShare.from_bytes(unreduced)


@pytest.mark.parametrize(("n", "t", "seed"), [(3, 4, SEED), (0, 0, SEED), (3, 2, b"short")])
def test_deal_rejects(n: int, t: int, seed: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        deal(n, t, seed)
