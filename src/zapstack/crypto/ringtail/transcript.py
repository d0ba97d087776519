"""The hash functions of Ringtail, each domain-separated (``docs/formats/ringtail.md``).

Contract
--------
Every function is a pure map from bytes to bytes or to sampled ring elements.
Tags are ASCII ``zapstack/ringtail/v1/<name>``; variable-length inputs are
length-prefixed (u32 big-endian) unless they are the last input.

=========  ========  =====================================================
name       XOF       input after the tag
=========  ========  =====================================================
A          SHAKE128  rho (32)                      -> uniform, NTT domain
pk         SHAKE256  pk bytes                      -> 32-byte pk digest
sid        SHAKE256  session id                    -> 32-byte sid digest
commit     SHA-256   one commitment's D bytes     -> 32-byte digest
session    SHAKE256  pk digest, sid digest, u16 count, u16 indices,
                     every commitment digest in signer order -> 32 bytes
u          SHAKE256  session digest, message       -> Gaussian(sigma_u)
c          SHAKE256  pk digest, packed h, message  -> 32-byte challenge seed
mask       SHAKE256  pair key, session digest, message -> uniform
r1         SHAKE256  nonce key, u16 index, u32 len + session id, rng seed
=========  ========  =====================================================
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from zapstack.crypto.ringtail.params import Params
from zapstack.crypto.ringtail.ring import DEGREE, Q
from zapstack.crypto.ringtail.sampling import Xof, gaussian, uniform_mod_q

__all__ = [
    "commitment_digest",
    "expand_a",
    "hash_c",
    "hash_u",
    "mask_prf",
    "nonce_xof",
    "pk_digest",
    "session_digest",
    "sid_digest",
]

I64 = npt.NDArray[np.int64]
_PREFIX: Final = b"zapstack/ringtail/v1/"


def _tag(name: str) -> bytes:
    return _PREFIX + name.encode("ascii") + b"\x00"


def _shake(name: str, *parts: bytes) -> bytes:
    xof = Xof(_tag(name) + b"".join(parts))
    return xof.read(32)


def expand_a(rho: bytes, p: Params) -> I64:
    """The public matrix A, sampled directly in the NTT domain: (rows, cols, 256)."""
    xof = Xof(_tag("A") + rho, shake128=True)
    return uniform_mod_q(xof, p.rows * p.cols * DEGREE).reshape(p.rows, p.cols, DEGREE)


def pk_digest(pk_bytes: bytes) -> bytes:
    """32-byte digest of an encoded group public key."""
    return _shake("pk", pk_bytes)


def sid_digest(session_id: bytes) -> bytes:
    """32-byte digest of a session id (carried in every commitment)."""
    return _shake("sid", session_id)


def commitment_digest(d_bytes: bytes | memoryview) -> bytes:
    """SHA-256(tag || D bytes) of one round-1 commitment (hashed once, in place)."""
    h = hashlib.sha256(_tag("commit"))
    h.update(d_bytes)
    return h.digest()


def session_digest(
    pk_dig: bytes, sid_dig: bytes, signers: Sequence[int], d_digests: Sequence[bytes]
) -> bytes:
    """Digest binding key, session, signer set and every round-1 commitment digest."""
    head = struct.pack(f">H{len(signers)}H", len(signers), *signers)
    return _shake("session", pk_dig, sid_dig, head, *d_digests)


def hash_u(session_dig: bytes, message: bytes, p: Params) -> I64:
    """The combination vector u = (1, u_1..u_dbar), coefficients mod q: (dbar+1, 256)."""
    xof = Xof(_tag("u") + session_dig + message)
    tail = gaussian(xof, p.sigma_u, p.dbar * DEGREE, p.tail).reshape(p.dbar, DEGREE)
    u = np.zeros((p.dbar + 1, DEGREE), dtype=np.int64)
    u[0, 0] = 1
    u[1:] = tail % Q
    return u


def hash_c(pk_dig: bytes, h_packed: bytes, message: bytes) -> bytes:
    """The 32-byte challenge seed c~ (expanded by :func:`sampling.challenge`)."""
    return _shake("c", pk_dig, h_packed, message)


def mask_prf(pair_key: bytes, session_dig: bytes, message: bytes, p: Params) -> I64:
    """The pairwise mask PRF(k_ij; session, message): uniform (cols, 256)."""
    xof = Xof(_tag("mask") + pair_key + session_dig + message)
    return uniform_mod_q(xof, p.cols * DEGREE).reshape(p.cols, DEGREE)


def nonce_xof(nonce_key: bytes, index: int, session_id: bytes, rng_seed: bytes) -> Xof:
    """The round-1 randomness stream of one party in one session."""
    head = struct.pack(">HI", index, len(session_id))
    return Xof(_tag("r1") + nonce_key + head + session_id + rng_seed)
