"""Magnetar leg: an accountable SLH-DSA quorum certificate.

Threshold SLH-DSA would need the master seed reconstructed (which Lux itself
forbids), so Magnetar is a signer bitmap plus one standard FIPS 205 signature
per signer over the Magnetar digest, in validator order (:mod:`.quorum`).  The
parameter set is the validator set's (chosen by CertPolicy ``MagnetarParams``):
SLH-DSA-SHAKE-192s in the conformance profile, SHA2-128f on devnets and in
tests.  pqcrypto holds the GIL, so many shares are signed through
:mod:`zapstack.consensus.pool` (a process pool), not threads.
"""

from __future__ import annotations

from collections.abc import Mapping

from zapstack.consensus.digest import CertContext, LegId, leg_digest
from zapstack.consensus.legs import quorum
from zapstack.consensus.validators import ValidatorSecrets, ValidatorSet
from zapstack.crypto import slhdsa
from zapstack.crypto.slhdsa import PARAMS, ParamSet

__all__ = ["aggregate", "sign_share", "verify", "verify_share"]

LEG = LegId.MAGNETAR


def sign_share(secrets: ValidatorSecrets, ctx: CertContext, params: ParamSet) -> bytes:
    """This validator's SLH-DSA signature over the Magnetar digest."""
    return slhdsa.sign(secrets.slhdsa_sk, leg_digest(ctx, LEG), params)


def verify_share(vset: ValidatorSet, ctx: CertContext, index: int, share: bytes) -> bool:
    """True iff ``share`` is validator ``index``'s valid Magnetar share."""
    if not 0 <= index < vset.n or not vset.validators[index].slhdsa_pk:
        return False
    key = vset.validators[index].slhdsa_pk
    return slhdsa.verify(key, leg_digest(ctx, LEG), share, vset.slh_params)


def aggregate(vset: ValidatorSet, ctx: CertContext, shares: Mapping[int, bytes]) -> bytes:
    """The Magnetar field from verified shares (fewest signers reaching threshold)."""
    del ctx
    return quorum.pack(vset, shares, PARAMS[vset.slh_params].signature_size, LEG.label)


def verify(vset: ValidatorSet, ctx: CertContext, field: bytes) -> list[int]:
    """Signers of a non-empty Magnetar field, or :class:`InvalidCert`."""
    params = vset.slh_params
    return quorum.unpack_verify(
        vset,
        leg_digest(ctx, LEG),
        field,
        sig_size=PARAMS[params].signature_size,
        key_of=lambda i: vset.validators[i].slhdsa_pk,
        verify=lambda pk, m, s: slhdsa.verify(pk, m, s, params),
        leg=LEG.label,
    )
