"""QuasarCert wire format and verification: every mode x every subset of legs; bad input."""

from __future__ import annotations

import contextlib
import importlib
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.consensus.cert import HEADER_SIZE, QuasarCert, decode, verify_cert
from zapstack.consensus.digest import CertContext, LegId
from zapstack.consensus.legs import bls as bls_leg
from zapstack.consensus.legs import magnetar, pulsar
from zapstack.consensus.policy import MODES, meets, observed_tier
from zapstack.consensus.validators import ValidatorSecrets, ValidatorSet, encode_bitmap
from zapstack.errors import InvalidCert

HAVE_RINGTAIL = hasattr(importlib.import_module("zapstack.crypto.ringtail"), "deal")
BLOCK = b"block bytes at height 7"  # the conftest ctx certifies this block
OTHER_BLOCK = b"a competing block at height 7"

Signer = Callable[[ValidatorSecrets, CertContext], bytes]


def _accountable(
    vset: ValidatorSet, secrets: list[ValidatorSecrets], ctx: CertContext
) -> dict[LegId, bytes]:
    signers = range(vset.threshold_weight)
    fields = {
        LegId.BLS: bls_leg.aggregate(
            vset, ctx, {i: bls_leg.sign_share(secrets[i], ctx) for i in signers}
        ),
        LegId.PULSAR: pulsar.aggregate(
            vset, ctx, {i: pulsar.sign_share(secrets[i], ctx) for i in signers}
        ),
        LegId.MAGNETAR: magnetar.aggregate(
            vset, ctx, {i: magnetar.sign_share(secrets[i], ctx, vset.slh_params) for i in signers}
        ),
    }
    if HAVE_RINGTAIL:
        from zapstack.consensus.legs import corona

        sess = corona.session_of(ctx)
        chosen = list(range(vset.corona_threshold))
        sigs = {i: corona.CoronaSigner(secrets[i], sess) for i in chosen}
        commits = {i: s.commitment for i, s in sigs.items()}
        responses = {i: s.respond(ctx, chosen, commits) for i, s in sigs.items()}
        fields[LegId.CORONA] = corona.aggregate(vset, ctx, chosen, commits, responses)
    return fields


@pytest.fixture(scope="module")
def fields(
    vset: ValidatorSet, secrets: list[ValidatorSecrets], ctx: CertContext
) -> dict[LegId, bytes]:
    return _accountable(vset, secrets, ctx)


@pytest.fixture(scope="module")
def other_fields(
    vset: ValidatorSet, secrets: list[ValidatorSecrets], other_ctx: CertContext
) -> dict[LegId, bytes]:
    """Legs signed over a competing block at the same height and round."""
    return _accountable(vset, secrets, other_ctx)


def _cert(ctx: CertContext, fields: dict[LegId, bytes], legs: frozenset[LegId]) -> QuasarCert:
    cert = QuasarCert.empty(ctx)
    for leg in legs:
        cert = cert.with_field(leg, fields[leg])
    return cert


AVAILABLE = [leg for leg in LegId if leg is not LegId.CORONA or HAVE_RINGTAIL]
SUBSETS = [
    frozenset(c) for r in range(len(AVAILABLE) + 1) for c in itertools.combinations(AVAILABLE, r)
]


@pytest.mark.parametrize(
    "legs", SUBSETS, ids=lambda s: "+".join(sorted(x.label for x in s)) or "none"
)
def test_every_subset_every_mode_with_real_legs(
    vset: ValidatorSet, ctx: CertContext, fields: dict[LegId, bytes], legs: frozenset[LegId]
) -> None:
    cert = _cert(ctx, fields, legs)
    wire = cert.encode()
    verdict = verify_cert(decode(wire), vset, block_bytes=BLOCK)
    assert verdict.present == legs
    for mode, spec in MODES.items():
        assert meets(observed_tier(spec.variant, verdict.present), mode) == (spec.legs <= legs)


def test_roundtrip_and_shape_independent_of_legs(
    ctx: CertContext, fields: dict[LegId, bytes]
) -> None:
    empty = QuasarCert.empty(ctx)
    assert len(empty.encode()) == HEADER_SIZE + 16
    full = _cert(ctx, fields, frozenset(AVAILABLE))
    assert decode(full.encode()) == full
    assert decode(bytearray(full.encode())) == full
    assert len(full.encode()) == HEADER_SIZE + 16 + sum(len(f) for f in fields.values())


def test_every_prefix_is_rejected_as_invalid(ctx: CertContext, fields: dict[LegId, bytes]) -> None:
    """The parser fed byte by byte: each strict prefix is an InvalidCert, never a crash."""
    wire = _cert(ctx, fields, frozenset({LegId.BLS, LegId.PULSAR})).encode()
    for cut in range(len(wire)):
        with pytest.raises(InvalidCert):
            decode(wire[:cut])
    with pytest.raises(InvalidCert, match="trailing"):
        decode(wire + b"\x00")


def test_header_errors(ctx: CertContext) -> None:
    wire = bytearray(QuasarCert.empty(ctx).encode())
    with pytest.raises(InvalidCert, match="magic"):
        decode(b"XCRT" + wire[4:])
    wire[4] = 2
    with pytest.raises(InvalidCert, match="version"):
        decode(bytes(wire))
    huge = QuasarCert.empty(ctx).encode()[:HEADER_SIZE] + b"\xff\xff\xff\xff"
    with pytest.raises(InvalidCert, match="exceeds"):
        decode(huge)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_garbage_never_crashes(data: bytes) -> None:
    with contextlib.suppress(InvalidCert):
        decode(data)


# --- the Must-show bad inputs -------------------------------------------------


def test_bitmap_below_threshold(
    vset: ValidatorSet,
    secrets: list[ValidatorSecrets],
    ctx: CertContext,
    fields: dict[LegId, bytes],
) -> None:
    few = range(vset.threshold_weight - 1)
    agg = bls_leg.aggregate  # refuses below threshold at aggregation time too
    with pytest.raises(InvalidCert, match="below threshold"):
        agg(vset, ctx, {i: bls_leg.sign_share(secrets[i], ctx) for i in few})
    # hand-built BLS field: a correct aggregate of 3 signers, honest bitmap of 3
    from zapstack.crypto import bls

    sig = bls.aggregate([bls_leg.sign_share(secrets[i], ctx) for i in few])
    forged = encode_bitmap(vset.n, few) + sig
    with pytest.raises(InvalidCert, match="bls: bitmap weight 3 below threshold 4"):
        verify_cert(_cert(ctx, {LegId.BLS: forged}, frozenset({LegId.BLS})), vset)
    # Pulsar with the bitmap cut down to t-1 and signatures to match
    blen = vset.bitmap_len
    pf = fields[LegId.PULSAR]
    cut = encode_bitmap(vset.n, few) + pf[blen : blen + 3 * 3309]
    with pytest.raises(InvalidCert, match="pulsar: bitmap weight 3 below threshold 4"):
        verify_cert(_cert(ctx, {LegId.PULSAR: cut}, frozenset({LegId.PULSAR})), vset)


def test_signature_from_a_non_member(
    vset: ValidatorSet,
    secrets: list[ValidatorSecrets],
    ctx: CertContext,
    fields: dict[LegId, bytes],
) -> None:
    from zapstack.consensus.validators import generate_validators

    _, outsiders = generate_validators(5, b"not-this-chain", corona=False)
    blen = vset.bitmap_len
    # a non-member's ML-DSA signature in validator 0's slot
    pf = bytearray(fields[LegId.PULSAR])
    pf[blen : blen + 3309] = pulsar.sign_share(outsiders[0], ctx)
    with pytest.raises(InvalidCert, match="pulsar: signature of validator 0 does not verify"):
        verify_cert(_cert(ctx, {LegId.PULSAR: bytes(pf)}, frozenset({LegId.PULSAR})), vset)
    # a non-member's BLS share folded into the aggregate
    shares = {i: bls_leg.sign_share(secrets[i], ctx) for i in range(3)}
    shares[3] = bls_leg.sign_share(outsiders[3], ctx)
    bad = bls_leg.aggregate(vset, ctx, shares)
    with pytest.raises(InvalidCert, match="bls: aggregate signature does not verify"):
        verify_cert(_cert(ctx, {LegId.BLS: bad}, frozenset({LegId.BLS})), vset)
    # a bitmap naming a validator index beyond the set
    mf = bytearray(fields[LegId.MAGNETAR])
    mf[0] |= 0x07  # bits 5..7 of a 5-validator set
    with pytest.raises(InvalidCert, match="not a member"):
        verify_cert(_cert(ctx, {LegId.MAGNETAR: bytes(mf)}, frozenset({LegId.MAGNETAR})), vset)


@pytest.mark.parametrize("leg", AVAILABLE, ids=lambda x: x.label)
def test_leg_signed_over_another_block(
    vset: ValidatorSet, ctx: CertContext, other_fields: dict[LegId, bytes], leg: LegId
) -> None:
    cert = _cert(ctx, other_fields, frozenset({leg}))
    with pytest.raises(InvalidCert, match=f"{leg.label}: .*(transcript|does not verify)") as info:
        verify_cert(cert, vset)
    assert info.value.leg == leg.label


@pytest.mark.parametrize("leg", AVAILABLE, ids=lambda x: x.label)
def test_truncated_field(
    vset: ValidatorSet, ctx: CertContext, fields: dict[LegId, bytes], leg: LegId
) -> None:
    for cut in (1, 50, len(fields[leg]) // 2, len(fields[leg]) - 1):
        cert = _cert(ctx, {leg: fields[leg][:cut]}, frozenset({leg}))
        with pytest.raises(InvalidCert) as info:
            verify_cert(decode(cert.encode()), vset)
        assert info.value.leg == leg.label


def test_wrong_block_and_wrong_set(
    vset: ValidatorSet, ctx: CertContext, fields: dict[LegId, bytes]
) -> None:
    cert = _cert(ctx, fields, frozenset({LegId.BLS}))
    with pytest.raises(InvalidCert, match="another block"):
        verify_cert(cert, vset, block_bytes=OTHER_BLOCK)
    from dataclasses import replace

    with pytest.raises(InvalidCert, match="another validator set"):
        verify_cert(replace(cert, vset_root=bytes(32)), vset)
