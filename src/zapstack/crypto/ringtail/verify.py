"""Ringtail signatures (c~, z, Delta): encoding and verification.

Contract
--------
* Encoding (``docs/formats/ringtail.md``): c~ (32 bytes) || z (cols*256
  values, 6-byte little-endian two's complement, each in [-2^47, 2^47)) ||
  Delta (rows*256 values of 48 - nu bits, packed LSB first, read as two's
  complement in [-2^(47-nu), 2^(47-nu))).  15,648 bytes with :data:`PARAMS`.
* :func:`verify_signature` accepts iff, with c = challenge(c~):
  h' = round_nu(A z - c * 2^xi b~) + Delta  (mod 2^(48-nu)),
  H_c(pk, h', message) == c~  and  ||z||^2 + ||2^nu Delta||^2 <= B^2
  (exact integer arithmetic).  One matrix-vector product in the NTT domain.
* :func:`verify` never raises on malformed input; it returns False.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from zapstack.crypto.ringtail.codec import (
    decode_signed48,
    encode_signed48,
    malformed,
    pack_bits,
    packed_len,
    round_bits,
    unpack_bits,
)
from zapstack.crypto.ringtail.keys import GroupPublicKey, expanded
from zapstack.crypto.ringtail.params import PARAMS, Params
from zapstack.crypto.ringtail.ring import DEGREE, Q, intt, matvec_ntt, mulmod, ntt, submod
from zapstack.crypto.ringtail.sampling import challenge
from zapstack.crypto.ringtail.transcript import hash_c
from zapstack.errors import ZapError

__all__ = ["Signature", "norm_sq", "recompute_h", "verify", "verify_signature"]

I64 = npt.NDArray[np.int64]
SEED_BYTES: Final = 32
_Z_LIMIT: Final = 1 << 47


@dataclass(frozen=True, slots=True, eq=False)
class Signature:
    """A decoded Ringtail signature."""

    c_tilde: bytes
    """32-byte challenge seed; c = challenge(c~) has kappa entries +-1."""
    z: I64
    """Response, centred integers, shape (cols, 256), each in [-2^47, 2^47)."""
    delta: I64
    """Hint Delta, centred integers, shape (rows, 256), each in [-2^(47-nu), 2^(47-nu))."""
    params: Params = PARAMS
    """The parameter set."""

    @staticmethod
    def encoded_len(params: Params = PARAMS) -> int:
        """Length of the encoding under ``params``."""
        return (
            SEED_BYTES
            + 6 * params.cols * DEGREE
            + packed_len(params.rows * DEGREE, params.log_q_nu)
        )

    def to_bytes(self) -> bytes:
        """c~ || z || Delta (raises ValueError if z or Delta is out of range)."""
        width = self.params.log_q_nu
        delta_u = np.where(self.delta < 0, self.delta + (1 << width), self.delta)
        return self.c_tilde + encode_signed48(self.z) + pack_bits(delta_u, width)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, params: Params = PARAMS) -> Signature:
        """Decode; raises InvalidCert on a wrong length or bad padding."""
        raw = bytes(data)
        if len(raw) != cls.encoded_len(params):
            raise malformed(f"signature is {len(raw)} bytes, expected {cls.encoded_len(params)}")
        z_end = SEED_BYTES + 6 * params.cols * DEGREE
        z = decode_signed48(raw[SEED_BYTES:z_end], params.cols * DEGREE)
        width = params.log_q_nu
        delta_u = unpack_bits(raw[z_end:], params.rows * DEGREE, width)
        delta = np.where(delta_u >= 1 << (width - 1), delta_u - (1 << width), delta_u)
        return cls(
            raw[:SEED_BYTES],
            z.reshape(params.cols, DEGREE),
            delta.reshape(params.rows, DEGREE),
            params,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signature):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())


def recompute_h(pk: GroupPublicKey, c_tilde: bytes, z: I64) -> I64:
    """round_nu(A z - c * 2^xi b~) in [0, 2^(48-nu)): shape (rows, 256)."""
    p = pk.params
    exp = expanded(pk)
    c_hat = ntt(challenge(c_tilde, p.kappa) % Q)
    az = matvec_ntt(exp.a_hat, ntt(z % Q))
    w = intt(submod(az, mulmod(exp.b_hat, c_hat[np.newaxis, :])))
    return round_bits(w, p.nu)


def norm_sq(z: I64, delta: I64, nu: int) -> int:
    """||z||^2 + ||2^nu Delta||^2 over centred integers, exactly."""
    zs = [int(v) for v in z.reshape(-1).tolist()]
    ds = [int(v) << nu for v in delta.reshape(-1).tolist()]
    return sum(v * v for v in zs) + sum(v * v for v in ds)


def verify_signature(pk: GroupPublicKey, message: bytes, sig: Signature) -> bool:
    """The verification equation on a decoded signature (no exceptions for bad values)."""
    p = pk.params
    shapes_ok = sig.z.shape == (p.cols, DEGREE) and sig.delta.shape == (p.rows, DEGREE)
    if not shapes_ok or len(sig.c_tilde) != SEED_BYTES:
        return False
    if int(np.abs(sig.z).max()) >= _Z_LIMIT:
        return False
    half = 1 << (p.log_q_nu - 1)
    if int(sig.delta.max()) >= half or int(sig.delta.min()) < -half:
        return False
    if norm_sq(sig.z, sig.delta, p.nu) > p.bound_sq:
        return False
    h = (recompute_h(pk, sig.c_tilde, sig.z) + sig.delta) & ((1 << p.log_q_nu) - 1)
    expected = hash_c(expanded(pk).digest, pack_bits(h, p.log_q_nu), message)
    return expected == sig.c_tilde


def verify(
    pk: GroupPublicKey,
    message: bytes | bytearray,
    signature: bytes | bytearray | memoryview,
) -> bool:
    """True iff ``signature`` is a valid Ringtail signature on ``message`` under ``pk``."""
    if not isinstance(signature, (bytes, bytearray, memoryview)) or not isinstance(
        message, (bytes, bytearray)
    ):
        return False
    try:
        sig = Signature.from_bytes(signature, pk.params)
        return verify_signature(pk, bytes(message), sig)
    except (ZapError, ValueError):
        return False
