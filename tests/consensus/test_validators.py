"""Validator sets: admission by proof of possession, thresholds, root, bitmaps."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.consensus.validators import (
    ValidatorSet,
    decode_bitmap,
    encode_bitmap,
    threshold_of,
)
from zapstack.crypto import bls
from zapstack.errors import ConfigError, InvalidCert


@pytest.mark.parametrize(("total", "t"), [(1, 1), (3, 3), (4, 3), (5, 4), (40, 27), (100, 67)])
def test_threshold(total: int, t: int) -> None:
    assert threshold_of(total) == t
    assert 3 * t > 2 * total and 3 * (t - 1) <= 2 * total


def test_fixture_set(vset: ValidatorSet) -> None:
    assert vset.n == 5 and vset.total_weight == 5 and vset.threshold_weight == 4
    assert vset.corona_threshold == 4 and len(vset.root) == 32


def test_pop_required(vset: ValidatorSet) -> None:
    vs = list(vset.validators)
    vs[1] = replace(vs[1], bls_pop=vs[0].bls_pop)  # someone else's proof
    with pytest.raises(ConfigError, match="proof of possession"):
        ValidatorSet.create(vs, vset.slh_params)
    vs[1] = replace(vs[1], bls_pop=b"")
    with pytest.raises(ConfigError, match="proof of possession"):
        ValidatorSet.create(vs, vset.slh_params)


def test_rogue_key_without_pop_rejected(vset: ValidatorSet) -> None:
    """A key crafted to cancel others cannot come with a valid PoP."""
    sk, _ = bls.keygen(b"\x07" * 32)
    vs = list(vset.validators)
    vs[2] = replace(vs[2], bls_pk=vs[0].bls_pk, bls_pop=vs[0].bls_pop)
    with pytest.raises(ConfigError, match="duplicate public key"):
        ValidatorSet.create(vs, vset.slh_params)
    vs[2] = replace(vs[2], bls_pk=bls.public_key(sk), bls_pop=bls.pop_prove(b"\x01" * 31 + b"\x02"))
    with pytest.raises(ConfigError):
        ValidatorSet.create(vs, vset.slh_params)


@pytest.mark.parametrize(
    ("field", "value", "msg"),
    [
        ("weight", 0, "weight"),
        ("index", 9, "out of order"),
        ("mldsa_pk", b"\x01" * 10, "ML-DSA-65"),
        ("slhdsa_pk", b"\x01" * 10, "slh-dsa"),
    ],
)
def test_bad_records(vset: ValidatorSet, field: str, value: object, msg: str) -> None:
    vs = list(vset.validators)
    vs[3] = replace(vs[3], **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=msg):
        ValidatorSet.create(vs, vset.slh_params)


def test_root_binds_every_record(vset: ValidatorSet) -> None:
    same = ValidatorSet.create(list(vset.validators), vset.slh_params, vset.corona_pk)
    assert same.root == vset.root
    vs = list(vset.validators)
    vs[0] = replace(vs[0], weight=2)
    assert ValidatorSet.create(vs, vset.slh_params, vset.corona_pk).root != vset.root
    assert ValidatorSet.create(list(vset.validators), vset.slh_params, b"x").root != vset.root
    assert ValidatorSet.create(list(vset.validators[:4]), vset.slh_params).root != vset.root


def test_weighted_threshold(vset: ValidatorSet) -> None:
    vs = [replace(v, weight=w) for v, w in zip(vset.validators, [10, 1, 1, 1, 1], strict=True)]
    heavy = ValidatorSet.create(vs, vset.slh_params)
    assert heavy.total_weight == 14 and heavy.threshold_weight == 10
    assert heavy.weight_of([0]) == 10 and heavy.weight_of([1, 2, 3, 4]) == 4


@given(n=st.integers(1, 40), data=st.data())
def test_bitmap_roundtrip(n: int, data: st.DataObject) -> None:
    idx = data.draw(st.sets(st.integers(0, n - 1)))
    bm = encode_bitmap(n, idx)
    assert len(bm) == (n + 7) // 8
    assert decode_bitmap(n, bm) == sorted(idx)


def test_bitmap_errors() -> None:
    assert encode_bitmap(9, [0, 8]) == b"\x80\x80"
    with pytest.raises(InvalidCert, match="not a member"):
        encode_bitmap(5, [5])
    with pytest.raises(InvalidCert, match="not a member"):
        decode_bitmap(5, b"\x04")  # bit 5 of a 5-member set
    with pytest.raises(InvalidCert, match="bytes"):
        decode_bitmap(9, b"\x80")
