"""ML-DSA-65 (FIPS 204) signatures through ``cryptography`` (OpenSSL).

Contract
--------
* A secret key is the 32-byte FIPS 204 seed ``xi``; ``keygen(seed)`` is
  therefore deterministic and ``keygen(seed)[0] == seed``.
* Signing is the *pure* FIPS 204 variant with an optional context string
  (empty by default) and OpenSSL's hedged randomness, so two signatures over the
  same message differ; any of them verifies.
* ``verify`` returns ``False`` on any malformed input and never raises.
* OpenSSL releases the GIL, so these calls may run in threads.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.mldsa import (
    MLDSA65PrivateKey,
    MLDSA65PublicKey,
)

from zapstack.errors import LocalProtocolError

__all__ = ["PUBLIC_KEY_SIZE", "SEED_SIZE", "SIGNATURE_SIZE", "keygen", "sign", "verify"]

SEED_SIZE = 32
"""The FIPS 204 key-generation seed, which is our secret-key encoding."""
PUBLIC_KEY_SIZE = 1952
SIGNATURE_SIZE = 3309


def _sk(secret_key: bytes) -> MLDSA65PrivateKey:
    if len(secret_key) != SEED_SIZE:
        raise LocalProtocolError(f"ML-DSA-65 secret key (seed) must be {SEED_SIZE} bytes")
    return MLDSA65PrivateKey.from_seed_bytes(secret_key)


def keygen(seed: bytes) -> tuple[bytes, bytes]:
    """Deterministic ``(secret_key, public_key)``; the secret key is ``seed`` itself."""
    sk = _sk(seed)
    return bytes(seed), sk.public_key().public_bytes_raw()


def public_key(secret_key: bytes) -> bytes:
    """The 1952-byte public key of ``secret_key``."""
    return _sk(secret_key).public_key().public_bytes_raw()


def sign(secret_key: bytes, message: bytes, context: bytes = b"") -> bytes:
    """A 3309-byte signature over ``message`` under ``context`` (<= 255 bytes)."""
    if len(context) > 255:
        raise LocalProtocolError("ML-DSA context string longer than 255 bytes")
    return _sk(secret_key).sign(message, context)


def verify(public_key: bytes, message: bytes, signature: bytes, context: bytes = b"") -> bool:
    """True iff ``signature`` is valid for ``message`` under ``public_key``/``context``."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE or len(context) > 255:
        return False
    try:
        pk = MLDSA65PublicKey.from_public_bytes(public_key)
        pk.verify(signature, message, context)
    except (InvalidSignature, ValueError):
        return False
    return True
