"""Rounding and the fixed-width coefficient encodings of the Ringtail formats.

Contract
--------
* ``round_bits(x, d)`` maps x in [0, q) to floor((x + 2^(d-1)) / 2^d) mod
  2^(48-d) (the paper's rounding with the top value wrapped, because
  2^48 < q); ``unround_bits(y, d)`` is y * 2^d, read in Z_q.  For every x,
  x - unround(round(x)) is congruent mod q to an integer of magnitude at most
  2^(d-1) + 18945.
* ``pack_bits`` / ``unpack_bits``: unsigned w-bit values, least significant
  bit first, into a little-endian bit stream, zero-padded to a whole byte.
  ``unpack_bits`` rejects wrong lengths and non-zero padding.
* ``encode_mod_q`` / ``decode_mod_q``: one value in [0, q) per 7 bytes,
  little-endian; decoding rejects a value >= q.
* ``encode_signed48`` / ``decode_signed48``: one value in [-2^47, 2^47) per
  6 bytes, little-endian two's complement.

Every decoder raises :class:`zapstack.errors.InvalidCert` (leg "corona") on
malformed input and never anything else.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from zapstack.crypto.ringtail.ring import Q
from zapstack.errors import InvalidCert

__all__ = [
    "LEG",
    "decode_mod_q",
    "decode_signed48",
    "encode_mod_q",
    "encode_signed48",
    "malformed",
    "pack_bits",
    "packed_len",
    "round_bits",
    "unpack_bits",
    "unround_bits",
]

I64 = npt.NDArray[np.int64]
LEG: Final = "corona"
_SIGNED48_LIMIT: Final = 1 << 47


def malformed(what: str) -> InvalidCert:
    """The one error every Ringtail decoder raises."""
    return InvalidCert(f"ringtail: {what}", leg=LEG)


def round_bits(x: I64, d: int) -> I64:
    """Drop ``d`` low bits with rounding: result in [0, 2^(48-d))."""
    return ((x + (1 << (d - 1))) >> d) & ((1 << (48 - d)) - 1)


def unround_bits(y: I64, d: int) -> I64:
    """Scale a rounded value back into [0, q): y * 2^d (y < 2^(48-d), so < q)."""
    return y << d


def pack_bits(values: I64, width: int) -> bytes:
    """Pack unsigned ``width``-bit values LSB first; pad the last byte with zeros."""
    flat = np.asarray(values, dtype=np.int64).reshape(-1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= 1 << width):
        raise ValueError(f"value out of range for {width}-bit packing")
    shifts = np.arange(width, dtype=np.int64)
    bits = ((flat[:, np.newaxis] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def packed_len(count: int, width: int) -> int:
    """Bytes taken by ``count`` packed ``width``-bit values."""
    return (count * width + 7) // 8


def unpack_bits(data: bytes | memoryview, count: int, width: int) -> I64:
    """Inverse of :func:`pack_bits`; rejects a wrong length or non-zero padding."""
    if len(data) != packed_len(count, width):
        raise malformed(f"packed field is {len(data)} bytes, expected {packed_len(count, width)}")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    if bits[count * width :].any():
        raise malformed("non-zero padding bits")
    grid = bits[: count * width].reshape(count, width).astype(np.int64)
    values: I64 = (grid << np.arange(width, dtype=np.int64)).sum(axis=1)
    return values


def encode_mod_q(values: I64) -> bytes:
    """7 bytes little-endian per value in [0, q)."""
    flat = np.ascontiguousarray(values, dtype="<i8").reshape(-1)
    return flat.view(np.uint8).reshape(-1, 8)[:, :7].tobytes()


def decode_mod_q(data: bytes | memoryview, count: int) -> I64:
    """Inverse of :func:`encode_mod_q`; rejects a wrong length or a value >= q."""
    if len(data) != 7 * count:
        raise malformed(f"field is {len(data)} bytes, expected {7 * count}")
    raw = np.zeros((count, 8), dtype=np.uint8)
    raw[:, :7] = np.frombuffer(data, dtype=np.uint8).reshape(count, 7)
    values = raw.view("<i8").reshape(count).astype(np.int64)
    if count and int(values.max()) >= Q:
        raise malformed("coefficient not reduced mod q")
    return values


def encode_signed48(values: I64) -> bytes:
    """6 bytes little-endian two's complement per value in [-2^47, 2^47)."""
    flat = np.ascontiguousarray(values, dtype="<i8").reshape(-1)
    if flat.size and (int(flat.min()) < -_SIGNED48_LIMIT or int(flat.max()) >= _SIGNED48_LIMIT):
        raise ValueError("value out of the signed 48-bit range")
    return flat.view(np.uint8).reshape(-1, 8)[:, :6].tobytes()


def decode_signed48(data: bytes | memoryview, count: int) -> I64:
    """Inverse of :func:`encode_signed48` (every 6-byte string is a valid value)."""
    if len(data) != 6 * count:
        raise malformed(f"field is {len(data)} bytes, expected {6 * count}")
    raw = np.zeros((count, 8), dtype=np.uint8)
    raw[:, :6] = np.frombuffer(data, dtype=np.uint8).reshape(count, 6)
    values = raw.view("<i8").reshape(count).astype(np.int64)
    return np.where(values >= _SIGNED48_LIMIT, values - (1 << 48), values)
