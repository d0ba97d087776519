"""Pulsar leg: an accountable ML-DSA-65 quorum certificate (not a threshold signature).

A true t-of-n threshold ML-DSA with a standard FIPS 204 output is not known to
be practical at 27-of-40, so Pulsar is what it is: a signer bitmap plus one
standard ML-DSA-65 signature (3309 bytes, empty context) per signer over the
Pulsar leg digest, in validator order (:mod:`.quorum`).  ML-DSA releases the
GIL: signing and verifying may run in threads.
"""

from __future__ import annotations

from collections.abc import Mapping

from zapstack.consensus.digest import CertContext, LegId, leg_digest
from zapstack.consensus.legs import quorum
from zapstack.consensus.validators import ValidatorSecrets, ValidatorSet
from zapstack.crypto import mldsa

__all__ = ["aggregate", "sign_share", "verify", "verify_share"]

LEG = LegId.PULSAR


def sign_share(secrets: ValidatorSecrets, ctx: CertContext) -> bytes:
    """This validator's ML-DSA-65 signature over the Pulsar digest."""
    return mldsa.sign(secrets.mldsa_sk, leg_digest(ctx, LEG))


def verify_share(vset: ValidatorSet, ctx: CertContext, index: int, share: bytes) -> bool:
    """True iff ``share`` is validator ``index``'s valid Pulsar share."""
    if not 0 <= index < vset.n or not vset.validators[index].mldsa_pk:
        return False
    return mldsa.verify(vset.validators[index].mldsa_pk, leg_digest(ctx, LEG), share)


def aggregate(vset: ValidatorSet, ctx: CertContext, shares: Mapping[int, bytes]) -> bytes:
    """The Pulsar field from verified shares (fewest signers reaching threshold)."""
    del ctx  # the shares are already bound to it
    return quorum.pack(vset, shares, mldsa.SIGNATURE_SIZE, LEG.label)


def verify(vset: ValidatorSet, ctx: CertContext, field: bytes) -> list[int]:
    """Signers of a non-empty Pulsar field, or :class:`InvalidCert`."""
    return quorum.unpack_verify(
        vset,
        leg_digest(ctx, LEG),
        field,
        sig_size=mldsa.SIGNATURE_SIZE,
        key_of=lambda i: vset.validators[i].mldsa_pk,
        verify=mldsa.verify,
        leg=LEG.label,
    )
