"""Signature schemes a ZAP frame may carry, chosen by the scheme byte (offset 7).

| id | scheme     | public key | signature | library                                     |
|----|------------|-----------:|----------:|---------------------------------------------|
| 0  | none       |          0 |         0 | --                                          |
| 1  | Ed25519    |         32 |        64 | sign: cryptography; verify: PyNaCl (strict) |
| 2  | ML-DSA-65  |       1952 |      3309 | cryptography (FIPS 204, pure)               |

Both schemes sign the 32-byte transcript digest (``transcript.py``) as the
message; ML-DSA-65 uses the empty context string.  Both verifiers release the
GIL, so verification parallelises on threads.

Ed25519 validity is pinned (docs/formats/zap.md §4.1) to one strict rule, the
one libsodium's ``crypto_sign_verify_detached`` implements: ``S < L``; the
public key ``A`` and ``R`` canonically encoded and not of small order; the
cofactorless equation ``[S]B = R + [k]A``.  A signature it accepts passes the
cofactored check too, so implementations that verify either way agree on every
tx this rule accepts.  (OpenSSL, behind ``cryptography``, accepts small-order
keys: an all-zero key with an all-zero signature verified for about 1 message
in 4, letting anyone spend from that account.)  The readable model of the rule
is :mod:`zapstack.conformance.oracles.ed25519`; tests hold the two equal.

``Signer`` holds a private key; ``verify_signature`` never raises on bad input,
it returns ``False``.  ML-DSA public-key objects are cached by their raw bytes
so that a sender's second tx skips key decoding.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError

from zapstack.errors import LocalProtocolError

__all__ = ["PK_SIZE", "SIG_SIZE", "SigScheme", "Signer", "verify_signature"]


class SigScheme(enum.IntEnum):
    """Scheme ids carried in header byte 7."""

    NONE = 0
    ED25519 = 1
    MLDSA65 = 2


PK_SIZE: dict[SigScheme, int] = {SigScheme.NONE: 0, SigScheme.ED25519: 32, SigScheme.MLDSA65: 1952}
SIG_SIZE: dict[SigScheme, int] = {SigScheme.NONE: 0, SigScheme.ED25519: 64, SigScheme.MLDSA65: 3309}

Buf = bytes | bytearray | memoryview


class Signer:
    """A private signing key of one scheme, derived deterministically from a 32-byte seed."""

    __slots__ = ("_sign", "public_key", "scheme")

    def __init__(self, scheme: SigScheme, seed: bytes) -> None:
        if len(seed) != 32:
            raise LocalProtocolError("a signer seed is exactly 32 bytes")
        self.scheme = scheme
        if scheme is SigScheme.ED25519:
            ek = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
            self.public_key: bytes = ek.public_key().public_bytes_raw()
            self._sign: Callable[[bytes], bytes] = ek.sign
        elif scheme is SigScheme.MLDSA65:
            mk = mldsa.MLDSA65PrivateKey.from_seed_bytes(seed)
            self.public_key = mk.public_key().public_bytes_raw()
            self._sign = mk.sign
        else:
            raise LocalProtocolError(f"cannot sign with scheme {scheme!r}")

    def sign(self, digest: bytes) -> bytes:
        """Sign a 32-byte transcript digest."""
        return self._sign(digest)


@lru_cache(maxsize=4096)
def _mldsa_key(pk: bytes) -> mldsa.MLDSA65PublicKey:
    return mldsa.MLDSA65PublicKey.from_public_bytes(pk)


def _verify_ed25519(pk: bytes, digest: bytes, sig: bytes) -> None:
    if len(sig) != 64:  # libsodium would read a shorter signature as part of the message
        raise ValueError("an Ed25519 signature is 64 bytes")
    crypto_sign_open(sig + digest, pk)  # strict (zap.md §4.1); raises on failure


def _verify_mldsa65(pk: bytes, digest: bytes, sig: bytes) -> None:
    _mldsa_key(pk).verify(sig, digest)


_VERIFIERS: dict[SigScheme, Callable[[bytes, bytes, bytes], None]] = {
    SigScheme.ED25519: _verify_ed25519,
    SigScheme.MLDSA65: _verify_mldsa65,
}


def verify_signature(scheme: int, pk: Buf, digest: bytes, sig: Buf) -> bool:
    """True iff ``sig`` is a valid signature of ``digest`` under ``pk``; never raises."""
    verifier = _VERIFIERS.get(scheme)  # type: ignore[call-overload]
    if verifier is None:
        return False
    try:
        verifier(bytes(pk), digest, bytes(sig))
    except (InvalidSignature, ValueError, CryptoError):
        return False
    return True
