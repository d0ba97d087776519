"""The QuasarCert oracle against the implementation's roots, digests and decoder."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.conformance.oracles import quasar_cert as ref
from zapstack.consensus.cert import QuasarCert, decode
from zapstack.consensus.digest import CertContext, LegId, leg_digest
from zapstack.consensus.validators import ValidatorSet, generate_validators
from zapstack.errors import InvalidCert


def _model(vset: ValidatorSet) -> ref.VSet:
    keys = ("bls_pk", "bls_pop", "mldsa_pk", "slhdsa_pk")
    validators = [{"weight": v.weight, **{k: getattr(v, k) for k in keys}} for v in vset.validators]
    return ref.VSet(validators, vset.slh_params.label, vset.corona_pk)


@pytest.mark.parametrize(("n", "corona"), [(1, False), (3, False), (5, False), (4, True)])
def test_vset_root_matches_the_implementation(n: int, corona: bool) -> None:
    vset, _ = generate_validators(
        n, b"oracle-vset", weights=list(range(1, n + 1)), corona=corona,
        legs_keyed=frozenset({"bls", "pulsar"}),
    )  # fmt: skip
    assert ref.vset_root(_model(vset)) == vset.root


def test_leg_digests_match_the_implementation() -> None:
    header = (96369, 7, 3, bytes(range(32)), bytes(range(32, 64)))
    ctx = CertContext(*header)
    for leg in LegId:
        assert ref.leg_digest(leg.label, header) == leg_digest(ctx, leg)


def _fields(data: bytes) -> tuple[bytes, ...] | None:
    try:
        c = decode(data)
    except InvalidCert:
        return None
    return (c.bls, c.pulsar, c.corona, c.magnetar)


def _oracle_fields(data: bytes) -> tuple[bytes, ...] | None:
    try:
        _, fields = ref.decode(data)
    except ref.Malformed:
        return None
    return tuple(fields[leg] for leg in ref.LEGS)


@settings(max_examples=200, deadline=None)
@given(
    fields=st.lists(st.binary(max_size=6), min_size=4, max_size=4),
    cut=st.integers(0, 30),
    extra=st.binary(max_size=3),
    patch=st.tuples(st.integers(0, 120), st.integers(0, 255)),
)
def test_decoder_agrees_with_the_implementation(
    fields: list[bytes], cut: int, extra: bytes, patch: tuple[int, int]
) -> None:
    ctx = CertContext(1, 2, 3, bytes(32), bytes(32))
    cert = QuasarCert.empty(ctx)
    for leg, value in zip(LegId, fields, strict=True):
        cert = cert.with_field(leg, value)
    data = cert.encode()
    assert _oracle_fields(data) == _fields(data) == tuple(fields)
    mutated = bytearray(data[: max(0, len(data) - cut)] + extra)
    if patch[0] < len(mutated):
        mutated[patch[0]] = patch[1]
    assert _oracle_fields(bytes(mutated)) == _fields(bytes(mutated))


def test_decoder_rejects_a_length_over_the_limit() -> None:
    data = QuasarCert.empty(CertContext(1, 2, 3, bytes(32), bytes(32))).encode()
    over = data[:-4] + struct.pack(">I", (1 << 24) + 1)
    with pytest.raises(ref.Malformed):
        ref.decode(over)
