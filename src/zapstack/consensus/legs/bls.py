"""BLS leg: BLS12-381 aggregate signature plus signer bitmap.

Field layout: ``bitmap (ceil(n/8) bytes) || aggregate signature (96 bytes)``.
Present = the bitmap's weight reaches the threshold weight and
FastAggregateVerify of the signers' (proof-of-possession-admitted) keys over
the BLS leg digest succeeds.  :func:`aggregate` folds in *every* verified
share: more signers cost no bytes and add accountability.
"""

from __future__ import annotations

from collections.abc import Mapping

from zapstack.consensus.digest import CertContext, LegId, leg_digest
from zapstack.consensus.validators import (
    ValidatorSecrets,
    ValidatorSet,
    decode_bitmap,
    encode_bitmap,
)
from zapstack.crypto import bls
from zapstack.errors import InvalidCert

__all__ = ["aggregate", "sign_share", "verify", "verify_share"]

LEG = LegId.BLS
_L = LEG.label


def sign_share(secrets: ValidatorSecrets, ctx: CertContext) -> bytes:
    """This validator's BLS signature over the BLS digest."""
    return bls.sign(secrets.bls_sk, leg_digest(ctx, LEG))


def verify_share(vset: ValidatorSet, ctx: CertContext, index: int, share: bytes) -> bool:
    """True iff ``share`` is validator ``index``'s valid BLS share."""
    if not 0 <= index < vset.n or not vset.validators[index].bls_pk:
        return False
    return bls.verify(vset.validators[index].bls_pk, leg_digest(ctx, LEG), share)


def aggregate(vset: ValidatorSet, ctx: CertContext, shares: Mapping[int, bytes]) -> bytes:
    """The BLS field from verified shares; :class:`InvalidCert` below threshold."""
    del ctx
    signers = sorted(shares)
    weight = vset.weight_of(signers)
    if weight < vset.threshold_weight:
        raise InvalidCert(
            f"bls: signer weight {weight} below threshold {vset.threshold_weight}", leg=_L
        )
    try:
        agg = bls.aggregate([shares[i] for i in signers])
    except Exception as exc:  # a malformed share is the caller's bug, reported as a cert error
        raise InvalidCert(f"bls: cannot aggregate: {exc}", leg=_L) from exc
    return encode_bitmap(vset.n, signers) + agg


def verify(vset: ValidatorSet, ctx: CertContext, field: bytes) -> list[int]:
    """Signers of a non-empty BLS field, or :class:`InvalidCert`."""
    blen = vset.bitmap_len
    want = blen + bls.SIGNATURE_SIZE
    if len(field) != want:
        kind = "truncated" if len(field) < want else "has trailing bytes"
        raise InvalidCert(f"bls: field {kind}: {len(field)} bytes, expected {want}", leg=_L)
    signers = decode_bitmap(vset.n, field[:blen], leg=_L)
    weight = vset.weight_of(signers)
    if weight < vset.threshold_weight:
        raise InvalidCert(
            f"bls: bitmap weight {weight} below threshold {vset.threshold_weight}", leg=_L
        )
    keys = [vset.validators[i].bls_pk for i in signers]
    if not all(keys):
        raise InvalidCert("bls: a signer in the bitmap has no BLS key registered", leg=_L)
    if not bls.fast_aggregate_verify(keys, leg_digest(ctx, LEG), field[blen:]):
        raise InvalidCert(
            "bls: aggregate signature does not verify over this cert's transcript", leg=_L
        )
    return signers
