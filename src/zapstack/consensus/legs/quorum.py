"""Accountable quorum certificates: a signer bitmap plus one standard signature each.

Shared by the Pulsar (ML-DSA-65) and Magnetar (SLH-DSA) legs.  Field layout::

    bitmap (ceil(n/8) bytes) || sig_{i1} || sig_{i2} || ... || sig_{ik}

with ``i1 < i2 < ... < ik`` the set bits and every signature of the scheme's
fixed size.  Present = the bitmap's weight reaches the set's threshold weight
and every listed signature verifies against that validator's key over the
leg digest.  :func:`pack` takes the fewest signers, in validator order, that
reach the threshold, so a cert carries no more signatures than it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from zapstack.consensus.validators import ValidatorSet, decode_bitmap, encode_bitmap
from zapstack.errors import InvalidCert

__all__ = ["pack", "unpack_verify"]

KeyOf = Callable[[int], bytes]
"""Validator index -> that validator's public key for this leg (empty = none)."""
Verifier = Callable[[bytes, bytes, bytes], bool]
"""(public key, message, signature) -> valid?"""


def pack(vset: ValidatorSet, shares: Mapping[int, bytes], sig_size: int, leg: str) -> bytes:
    """Field bytes from already-verified ``shares`` (index -> signature)."""
    chosen: list[int] = []
    weight = 0
    for i in sorted(shares):
        if not 0 <= i < vset.n:
            raise InvalidCert(f"{leg}: share from non-member {i}", leg=leg)
        if len(shares[i]) != sig_size:
            raise InvalidCert(f"{leg}: share of validator {i} has the wrong size", leg=leg)
        chosen.append(i)
        weight += vset.validators[i].weight
        if weight >= vset.threshold_weight:
            break
    if weight < vset.threshold_weight:
        raise InvalidCert(
            f"{leg}: signer weight {weight} below threshold {vset.threshold_weight}", leg=leg
        )
    return encode_bitmap(vset.n, chosen) + b"".join(shares[i] for i in chosen)


def unpack_verify(
    vset: ValidatorSet,
    message: bytes,
    field: bytes,
    *,
    sig_size: int,
    key_of: KeyOf,
    verify: Verifier,
    leg: str,
) -> list[int]:
    """Check a non-empty field; return its signers or raise :class:`InvalidCert`."""
    blen = vset.bitmap_len
    if len(field) < blen:
        raise InvalidCert(f"{leg}: field truncated inside the {blen}-byte bitmap", leg=leg)
    signers = decode_bitmap(vset.n, field[:blen], leg=leg)
    want = blen + sig_size * len(signers)
    if len(field) != want:
        kind = "truncated" if len(field) < want else "has trailing bytes"
        raise InvalidCert(
            f"{leg}: field {kind}: {len(field)} bytes, {len(signers)} signers need {want}",
            leg=leg,
        )
    weight = vset.weight_of(signers)
    if weight < vset.threshold_weight:
        raise InvalidCert(
            f"{leg}: bitmap weight {weight} below threshold {vset.threshold_weight}", leg=leg
        )
    for k, i in enumerate(signers):
        key = key_of(i)
        if not key:
            raise InvalidCert(f"{leg}: validator {i} has no {leg} key registered", leg=leg)
        sig = field[blen + k * sig_size : blen + (k + 1) * sig_size]
        if not verify(key, message, sig):
            raise InvalidCert(
                f"{leg}: signature of validator {i} does not verify over this cert's transcript",
                leg=leg,
            )
    return signers
