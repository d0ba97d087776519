"""BLS12-381 signatures, proof-of-possession scheme (blspy ``PopSchemeMPL``).

Ciphersuite ``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_``: public keys are
48-byte compressed G1 points, signatures 96-byte compressed G2 points.

Contract
--------
* ``keygen(seed)`` is deterministic (IETF KeyGen over a >= 32-byte seed).
* ``fast_aggregate_verify`` is only sound over keys that passed
  :func:`pop_verify`; the validator set admits a BLS key only with its proof.
* Every ``verify``-style function returns ``False`` on malformed bytes (a point
  not on the curve, a wrong length) instead of raising.
* blspy releases the GIL, so these calls may run in threads.
"""

from __future__ import annotations

from collections.abc import Sequence

from blspy import G1Element, G2Element, PopSchemeMPL, PrivateKey

from zapstack.errors import LocalProtocolError

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SECRET_KEY_SIZE",
    "SIGNATURE_SIZE",
    "aggregate",
    "fast_aggregate_verify",
    "keygen",
    "pop_prove",
    "pop_verify",
    "public_key",
    "sign",
    "verify",
]

PUBLIC_KEY_SIZE = 48
"""Compressed G1 point."""
SIGNATURE_SIZE = 96
"""Compressed G2 point."""
SECRET_KEY_SIZE = 32
"""Big-endian scalar."""


def keygen(seed: bytes) -> tuple[bytes, bytes]:
    """Deterministic ``(secret_key, public_key)`` from a seed of at least 32 bytes."""
    if len(seed) < 32:
        raise LocalProtocolError("BLS keygen needs a seed of at least 32 bytes")
    sk = PopSchemeMPL.key_gen(seed)
    return bytes(sk), bytes(sk.get_g1())


def _sk(secret_key: bytes) -> PrivateKey:
    if len(secret_key) != SECRET_KEY_SIZE:
        raise LocalProtocolError(f"BLS secret key must be {SECRET_KEY_SIZE} bytes")
    return PrivateKey.from_bytes(secret_key)


def public_key(secret_key: bytes) -> bytes:
    """The 48-byte public key of ``secret_key``."""
    return bytes(_sk(secret_key).get_g1())


def sign(secret_key: bytes, message: bytes) -> bytes:
    """A 96-byte signature over ``message``."""
    return bytes(PopSchemeMPL.sign(_sk(secret_key), message))


def pop_prove(secret_key: bytes) -> bytes:
    """The 96-byte proof of possession of ``secret_key``."""
    return bytes(PopSchemeMPL.pop_prove(_sk(secret_key)))


def _g1(data: bytes) -> G1Element | None:
    if len(data) != PUBLIC_KEY_SIZE:
        return None
    try:
        return G1Element.from_bytes(data)
    except (ValueError, RuntimeError):
        return None


def _g2(data: bytes) -> G2Element | None:
    if len(data) != SIGNATURE_SIZE:
        return None
    try:
        return G2Element.from_bytes(data)
    except (ValueError, RuntimeError):
        return None


def pop_verify(public_key: bytes, proof: bytes) -> bool:
    """True iff ``proof`` proves possession of the key behind ``public_key``."""
    pk, sig = _g1(public_key), _g2(proof)
    if pk is None or sig is None or pk == G1Element():
        return False
    return bool(PopSchemeMPL.pop_verify(pk, sig))


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is ``public_key``'s signature over ``message``."""
    pk, sig = _g1(public_key), _g2(signature)
    if pk is None or sig is None:
        return False
    return bool(PopSchemeMPL.verify(pk, message, sig))


def aggregate(signatures: Sequence[bytes]) -> bytes:
    """The aggregate (G2 sum) of ``signatures``; raises on a malformed one."""
    if not signatures:
        raise LocalProtocolError("cannot aggregate zero BLS signatures")
    points = []
    for i, s in enumerate(signatures):
        p = _g2(s)
        if p is None:
            raise LocalProtocolError(f"BLS signature {i} is not a valid G2 point")
        points.append(p)
    return bytes(PopSchemeMPL.aggregate(points))


def fast_aggregate_verify(public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
    """FastAggregateVerify: all ``public_keys`` signed the same ``message``.

    Sound only over proof-of-possession-checked keys.
    """
    if not public_keys:
        return False
    sig = _g2(signature)
    if sig is None:
        return False
    pks = []
    for raw in public_keys:
        pk = _g1(raw)
        if pk is None:
            return False
        pks.append(pk)
    return bool(PopSchemeMPL.fast_aggregate_verify(pks, message, sig))
