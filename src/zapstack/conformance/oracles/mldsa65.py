"""ML-DSA-65 (FIPS 204) as a second, independent implementation: ``dilithium-py``.

The implementation verifies with OpenSSL (through ``cryptography``); this
oracle is the pure-Python ``dilithium-py`` package, which shares no code with
it.  It is not a model we wrote: it is a different implementation, pinned to
FIPS 204 known-answer values by :data:`zapstack.conformance.tx_signatures.KAT`.
Signing here is the FIPS 204 *deterministic* variant (``rnd`` = 32 zero
bytes), so vector files are reproducible; OpenSSL signs hedged.

``dilithium-py`` is a dev dependency: import this module only to generate
vectors or in tests.
"""

from __future__ import annotations

from dilithium_py.ml_dsa import ML_DSA_65

__all__ = ["PK_SIZE", "SIG_SIZE", "keygen", "sign", "verify"]

PK_SIZE = 1952
SIG_SIZE = 3309


def keygen(xi: bytes) -> tuple[bytes, bytes]:
    """FIPS 204 ML-DSA.KeyGen_internal(xi): ``(pk, sk)``."""
    pk, sk = ML_DSA_65.key_derive(xi)
    return bytes(pk), bytes(sk)


def sign(sk: bytes, msg: bytes, ctx: bytes = b"") -> bytes:
    """Deterministic pure ML-DSA.Sign(sk, msg, ctx)."""
    return bytes(ML_DSA_65.sign(sk, msg, ctx, deterministic=True))


def verify(pk: bytes, msg: bytes, sig: bytes, ctx: bytes = b"") -> bool:
    """Pure ML-DSA.Verify; False for encodings of the wrong length (FIPS 204 §4 sizes)."""
    if len(pk) != PK_SIZE or len(sig) != SIG_SIZE or len(ctx) > 255:
        return False
    try:
        return bool(ML_DSA_65.verify(pk, msg, sig, ctx))
    except (ValueError, AssertionError, IndexError):  # a malformed hint or encoding
        return False
