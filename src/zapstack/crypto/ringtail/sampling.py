"""Deterministic samplers driven by an extendable-output function (XOF).

Contract
--------
Every sampler reads a :class:`Xof` *sequentially*; the byte stream is the
XOF output from offset 0 on, so ``digest(n)`` is a prefix of
``digest(n + k)`` and the result is independent of how much is prefetched.
Nothing here uses the platform's ``log``/``cos``: the Gaussian sampler uses
only IEEE-754 double ``+ - * /``, ``sqrt``, ``frexp`` and ``floor`` in a fixed
order, so a second implementation reproduces it bit for bit (no fused
multiply-add).

* :func:`uniform_mod_q` -- 8-byte little-endian words w; accept
  w < 65535*q and output w mod q (rejection, exact uniformity).
* :func:`gaussian` -- rounded continuous Gaussian of width sigma truncated at
  ``tail*sigma``: Marsaglia's polar method on pairs of 8-byte words, a
  deterministic natural log (:func:`det_log`), truncation by rejection on
  the continuous value |x| <= tail, then ``floor(sigma*x + 0.5)``.  The
  polar block runs in C (``_ringfast.polar_block``, the same operations in
  the same order, no FMA) when the extension is built; :func:`_polar_block_np`
  is the reference it is held equal to bit for bit.
* :func:`challenge` -- the ternary challenge with exactly kappa entries
  +-1 (Fisher-Yates "sample in ball"; 8 sign bytes, then one byte per draw).

Pure functions over the XOF object; the XOF itself is the only state.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
import numpy.typing as npt

from zapstack.crypto.ringtail.ring import DEGREE, Q

try:
    from zapstack.crypto.ringtail import _ringfast
except ImportError:  # pragma: no cover - the extension is optional
    _ringfast = None  # type: ignore[assignment]

__all__ = ["Xof", "challenge", "det_log", "gaussian", "gaussian_bytes", "uniform_mod_q"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_UNIFORM_LIMIT: Final = (2**64 // Q) * Q  # 65535 * q
_LN2: Final = 0.6931471805599453  # the double nearest ln 2
_SQRT_HALF: Final = 0.7071067811865476  # the double nearest sqrt(1/2)
_ATANH_TERMS: Final = 11  # 1/(2k+1) for k = 0..10
_TWO_POW_53: Final = float(2**53)


class Xof:
    """A sequential reader over SHAKE128 or SHAKE256 output."""

    __slots__ = ("_buf", "_hash", "_pos")

    def __init__(self, data: bytes, *, shake128: bool = False) -> None:
        self._hash = hashlib.shake_128(data) if shake128 else hashlib.shake_256(data)
        self._buf = b""
        self._pos = 0

    def read(self, n: int) -> bytes:
        """Return the next ``n`` bytes of the stream."""
        out = self.peek(n)
        self._pos += n
        return out

    def peek(self, n: int) -> bytes:
        """The next ``n`` bytes, without consuming them."""
        end = self._pos + n
        if end > len(self._buf):
            self._buf = self._hash.digest(max(end, 2 * len(self._buf)))
        return self._buf[self._pos : end]

    def reserve(self, n: int) -> None:
        """Squeeze the next ``n`` bytes now, in one call.  ``hashlib``'s SHAKE has no
        incremental squeeze: growing the buffer regenerates it from the start, so a
        caller that knows how much it will read (round 1: four Gaussian vectors, ~2 MB)
        saves the regrowths.  The stream's bytes are the same either way."""
        end = self._pos + n
        if end > len(self._buf):
            self._buf = self._hash.digest(end)

    def skip(self, n: int) -> None:
        """Consume ``n`` bytes."""
        self._pos += n

    def peek_words(self, count: int) -> npt.NDArray[np.uint64]:
        """The next ``count`` 8-byte little-endian words, without consuming them."""
        return np.frombuffer(self.peek(8 * count), dtype="<u8").astype(np.uint64)


def _take(keep: npt.NDArray[np.bool_], need: int, unit: int) -> tuple[int, int]:
    """(outputs taken, units consumed) for a block whose outputs are ``keep``.

    ``keep`` has shape (units, outputs_per_unit) in stream order.  If the
    block holds ``need`` accepted outputs, consumption stops after the unit
    that produced the last one; otherwise the whole block is consumed.
    """
    flat = np.cumsum(keep.reshape(-1))
    if len(flat) == 0 or flat[-1] < need:
        return (int(flat[-1]) if len(flat) else 0), keep.shape[0]
    last = int(np.searchsorted(flat, need))  # index of the need-th accepted output
    return need, last // unit + 1


def uniform_mod_q(xof: Xof, count: int) -> I64:
    """``count`` uniform values in [0, q), row-major in stream order."""
    out: list[I64] = []
    have = 0
    while have < count:
        need = count - have
        w = xof.peek_words(need + need // 4096 + 4)
        keep = w < np.uint64(_UNIFORM_LIMIT)
        taken, used = _take(keep.reshape(-1, 1), need, 1)
        xof.skip(8 * used)
        out.append((w[:used][keep[:used]] % np.uint64(Q)).astype(np.int64))
        have += taken
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def det_log(s: F64) -> F64:
    """Natural log of positive doubles, from IEEE basic operations only.

    s = m * 2^e with m in [sqrt(1/2), sqrt(2)); ln s = e*LN2 + 2*atanh(y),
    y = (m - 1)/(m + 1), |y| < 0.1716, 2*atanh(y) = 2*y*sum_k y^(2k)/(2k+1)
    (11 terms, Horner from k = 10 down).  Relative error < 1e-15.
    """
    m, e = np.frexp(s)  # m in [0.5, 1)
    low = m < _SQRT_HALF
    m = np.where(low, m * 2.0, m)
    e = np.where(low, e - 1, e)
    y = (m - 1.0) / (m + 1.0)
    y2 = y * y
    acc = np.full_like(y, 1.0 / (2 * (_ATANH_TERMS - 1) + 1))
    for k in range(_ATANH_TERMS - 2, -1, -1):
        acc = acc * y2 + 1.0 / (2 * k + 1)
    return e.astype(np.float64) * _LN2 + (2.0 * y) * acc


def _polar_block(words: npt.NDArray[np.uint64], tail: float) -> tuple[F64, npt.NDArray[np.bool_]]:
    """Polar method on word pairs: (outputs (pairs, 2), accepted (pairs, 2)); C when built."""
    if _ringfast is None or words.dtype != np.uint64 or words.ndim != 1 or len(words) % 2:
        return _polar_block_np(words, tail)
    pairs = len(words) // 2
    x = np.empty((pairs, 2), dtype=np.float64)
    keep = np.empty((pairs, 2), dtype=np.bool_)
    _ringfast.polar_block(np.ascontiguousarray(words), pairs, float(tail), x, keep)
    return x, keep


def _polar_block_np(
    words: npt.NDArray[np.uint64], tail: float
) -> tuple[F64, npt.NDArray[np.bool_]]:
    """The numpy reference of :func:`_polar_block`."""
    k = (words >> np.uint64(11)).astype(np.int64)  # 53-bit integers
    v = (2 * k + 1 - (1 << 53)).astype(np.float64) / _TWO_POW_53  # odd / 2^53 in (-1, 1)
    pair = v.reshape(-1, 2)
    s = pair[:, 0] * pair[:, 0] + pair[:, 1] * pair[:, 1]
    inside = s < 1.0
    f = np.zeros_like(s)
    f[inside] = np.sqrt((det_log(s[inside]) * -2.0) / s[inside])
    x = pair * f[:, np.newaxis]
    keep = inside[:, np.newaxis] & (np.abs(x) <= tail)
    return x, keep


def _gaussian_pairs(count: int) -> int:
    """Word pairs :func:`gaussian` first reads for ``count`` outputs (~3% above the
    polar method's 1.498 accepted outputs per pair at tail 2)."""
    return int(count / 1.45) + 8


def gaussian_bytes(count: int) -> int:
    """Stream bytes :func:`gaussian` first reads for ``count`` outputs: what to
    :meth:`Xof.reserve` ahead (it reads more only in the rare short block)."""
    return 16 * _gaussian_pairs(count)


def gaussian(xof: Xof, sigma: float, count: int, tail: float = 2.0) -> I64:
    """``count`` signed integers floor(sigma*x + 0.5), x standard normal, |x| <= tail.

    Each 16-byte pair gives x = v1*f then y = v2*f (when v1^2 + v2^2 < 1);
    each is kept iff its magnitude is <= tail.  The stream stops after the
    pair that yields output number ``count``.
    """
    out: list[F64] = []
    have = 0
    while have < count:
        need = count - have
        x, keep = _polar_block(xof.peek_words(2 * _gaussian_pairs(need)), tail)
        taken, used = _take(keep, need, 2)
        xof.skip(16 * used)
        out.append(x.reshape(-1)[keep.reshape(-1)][:taken])
        have += taken
    normals = np.concatenate(out) if out else np.zeros(0, dtype=np.float64)
    return np.floor(normals * sigma + 0.5).astype(np.int64)


def challenge(seed: bytes, kappa: int) -> I64:
    """The ternary challenge polynomial (int64, entries in {-1, 0, 1}, weight kappa)."""
    xof = Xof(b"zapstack/ringtail/v1/ball\x00" + seed)
    signs = int.from_bytes(xof.read(8), "little")
    c = [0] * DEGREE
    for i in range(DEGREE - kappa, DEGREE):
        j = xof.read(1)[0]
        while j > i:
            j = xof.read(1)[0]
        c[i] = c[j]
        c[j] = 1 - 2 * (signs & 1)
        signs >>= 1
    return np.array(c, dtype=np.int64)
