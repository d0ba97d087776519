"""Arithmetic in R_q = Z_q[X]/(X^256 + 1), q = 2^48 + 18945, vectorised with numpy.

Contract
--------
* A ring element is an ``int64`` array whose last axis has length 256
  (coefficient of X^k at index k), every entry in ``[0, q)``.  Any leading
  axes are a batch (vectors, matrices of polynomials); every function here
  broadcasts over them.
* numpy has no 128-bit integers, so :func:`mulmod` estimates the quotient
  in binary64 and takes the remainder exactly in wrapping int64 arithmetic
  (the error bound is argued next to the code); :func:`mulmod_limbs` (24-bit
  limbs, ``2^48 = -18945 (mod q)``) is the slower second model.
* :func:`ntt` / :func:`intt` are the negacyclic number-theoretic transform
  and its inverse (Cooley-Tukey forward, Gentleman-Sande inverse, twiddles in
  bit-reversed order).  Output slot ``k`` of :func:`ntt` holds
  ``a(psi^(2*brv8(k)+1))`` where ``psi = 11^((q-1)/512) mod q`` is a primitive
  512th root of unity and ``brv8`` reverses 8 bits.  Products in the NTT
  domain are slot-wise :func:`mulmod`.
* :func:`ntt`, :func:`intt`, :func:`matmul_ntt` and :func:`matvec_ntt` run
  in the optional C extension :mod:`zapstack.crypto.ringtail._ringfast` when
  it is built (``FAST``) and the input is a batch of in-range polynomials;
  otherwise (and as the readable reference) in numpy: :func:`ntt_np`,
  :func:`intt_np`, :func:`matmul_ntt_np`, :func:`matvec_ntt_np`.  Both paths
  give identical arrays (tests/crypto/test_ringtail_ringfast.py).
* :func:`schoolbook_mul` is the readable reference (Python integers, the
  definition of negacyclic convolution); tests keep :func:`poly_mul` equal.

Pure functions, no state beyond the precomputed twiddle tables.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

try:
    from zapstack.crypto.ringtail import _ringfast
except ImportError:  # pragma: no cover - the extension is optional
    _ringfast = None  # type: ignore[assignment]

__all__ = [
    "DEGREE",
    "FAST",
    "PSI",
    "Poly",
    "Q",
    "addmod",
    "center",
    "intt",
    "intt_np",
    "matmul_ntt",
    "matmul_ntt_np",
    "matvec_ntt",
    "matvec_ntt_np",
    "mulmod",
    "mulmod_limbs",
    "mulmod_reference",
    "negmod",
    "ntt",
    "ntt_np",
    "poly_mul",
    "schoolbook_mul",
    "submod",
]

Poly = npt.NDArray[np.int64]
"""An int64 array of ring elements (last axis: 256 coefficients in [0, q))."""

DEGREE: Final = 256
Q: Final = (1 << 48) + 18945
"""The prime modulus; q = 1 (mod 512), so X^256 + 1 splits into linear factors."""

_FOLD: Final = 18945  # 2^48 = -_FOLD (mod q)
_MASK24: Final = (1 << 24) - 1
_INV_Q: Final = 1.0 / Q
_GENERATOR: Final = 11  # a generator of Z_q^*
PSI: Final = pow(_GENERATOR, (Q - 1) // 512, Q)
"""Primitive 512th root of unity: PSI^256 = -1 (mod q)."""

FAST: Final = _ringfast is not None
"""True when the C extension is built (ntt/intt/matmul_ntt/matvec_ntt use it)."""


def mulmod_reference(a: int, b: int) -> int:
    """The definition :func:`mulmod` must match: ``a*b mod q`` on Python integers."""
    return (a * b) % Q


def mulmod(a: Poly, b: Poly | int) -> Poly:
    """Entry-wise ``a*b mod q`` for entries in ``[0, q)`` (broadcasting).

    Quotient by floating point, remainder by exact wrapping integers:

        k = trunc(float(a) * float(b) * fl(1/q)),   r = a*b - k*q  (int64, mod 2^64)

    a and b are below 2^49, so their floats are exact and the three rounded
    operations leave a relative error below 3 * 2^-53: with a*b/q < 2^48.01
    the estimate is off from floor(a*b/q) by less than 0.1, so k is that floor
    or one away from it and the true remainder a*b - k*q lies in [-q, 2q).
    That fits int64, so computing it modulo 2^64 (numpy's wrapping product)
    gives it exactly; two branch-free corrections bring it into [0, q).
    2.5x faster than the 24-bit limb product this replaced (kept as
    :func:`mulmod_limbs`, the second model the tests hold it to).
    """
    b_arr = np.asarray(b, dtype=np.int64)
    k = (a.astype(np.float64) * b_arr.astype(np.float64) * _INV_Q).astype(np.int64)
    r = a * b_arr
    r -= k * Q
    r += (r >> 63) & Q  # [-q, 2q) -> [0, 2q)
    r -= Q
    r += (r >> 63) & Q  # [-q, q) -> [0, q)
    return r


def mulmod_limbs(a: Poly, b: Poly | int) -> Poly:
    """Entry-wise ``a*b mod q`` by 24-bit limbs (the reference for :func:`mulmod`).

    With a = a1*2^24 + a0 and b = b1*2^24 + b0 (a0, b0 < 2^24; a1, b1 <= 2^24
    because q < 2^48 + 2^24):

        a*b = a1*b1*2^48 + mid*2^24 + a0*b0,   mid = a0*b1 + a1*b0 < 2^49
        mid = m1*2^24 + m0                      (m0 < 2^24, m1 < 2^25)
        a*b = -18945*(a1*b1 + m1) + m0*2^24 + a0*b0   (mod q)

    18945 * (2^48 + 2^25) < 5.34e18 < 2^63, and the positive part is < 2^49,
    so the int64 sum cannot overflow; a final floor-mod brings it to [0, q).
    """
    a0 = a & _MASK24
    a1 = a >> 24
    b_arr = np.asarray(b, dtype=np.int64)
    b0 = b_arr & _MASK24
    b1 = b_arr >> 24
    mid = a0 * b1 + a1 * b0
    folded = (mid & _MASK24) << 24
    folded += a0 * b0
    folded -= _FOLD * (a1 * b1 + (mid >> 24))
    folded %= Q
    return folded


def addmod(a: Poly, b: Poly) -> Poly:
    """``(a + b) mod q`` for entries in ``[0, q)``."""
    s = a + b
    s -= Q
    s += (s >> 63) & Q  # add q back where the difference went negative
    return s


def submod(a: Poly, b: Poly) -> Poly:
    """``(a - b) mod q`` for entries in ``[0, q)``."""
    d = a - b
    d += (d >> 63) & Q
    return d


def negmod(a: Poly) -> Poly:
    """``-a mod q`` for entries in ``[0, q)``."""
    return submod(np.zeros_like(a), a)


def center(a: Poly) -> Poly:
    """Map ``[0, q)`` to the centred representatives ``(-q/2, q/2]``."""
    return np.where(a > (Q - 1) // 2, a - Q, a)


def _brv8(k: int) -> int:
    return int(f"{k:08b}"[::-1], 2)


# ZETAS[k] = PSI^brv8(k); the forward transform uses k = 1..255 in order.
_ZETAS: Final = np.array([pow(PSI, _brv8(k), Q) for k in range(DEGREE)], dtype=np.int64)
_ZETAS_INV: Final = np.array([pow(int(z), Q - 2, Q) for z in _ZETAS], dtype=np.int64)
_N_INV: Final = pow(DEGREE, Q - 2, Q)


def ntt_np(a: Poly) -> Poly:
    """Forward negacyclic NTT over the last axis (returns a new array; numpy).

    Layer with half-length L has G = 128/L groups; group g multiplies its
    upper half by ZETAS[G + g] (the Cooley-Tukey butterfly).
    """
    out = np.array(a, dtype=np.int64, copy=True)
    batch = out.shape[:-1]
    half = DEGREE // 2
    while half >= 1:
        groups = DEGREE // (2 * half)
        view = out.reshape(*batch, groups, 2, half)
        zetas = _ZETAS[groups : 2 * groups].reshape(groups, 1)
        lo = view[..., 0, :]
        t = mulmod(view[..., 1, :], zetas)
        hi_new = submod(lo, t)
        view[..., 0, :] = addmod(lo, t)
        view[..., 1, :] = hi_new
        half //= 2
    return out


def intt_np(a: Poly) -> Poly:
    """Inverse of :func:`ntt` over the last axis (Gentleman-Sande, then times 1/256; numpy)."""
    out = np.array(a, dtype=np.int64, copy=True)
    batch = out.shape[:-1]
    half = 1
    while half < DEGREE:
        groups = DEGREE // (2 * half)
        view = out.reshape(*batch, groups, 2, half)
        zetas = _ZETAS_INV[groups : 2 * groups].reshape(groups, 1)
        lo = view[..., 0, :].copy()
        hi = view[..., 1, :]
        view[..., 0, :] = addmod(lo, hi)
        view[..., 1, :] = mulmod(submod(lo, hi), zetas)
        half *= 2
    return mulmod(out, _N_INV)


def poly_mul(a: Poly, b: Poly) -> Poly:
    """Negacyclic product via the NTT (broadcasting over batch axes)."""
    return intt(mulmod(ntt(a), ntt(b)))


def schoolbook_mul(a: list[int], b: list[int]) -> list[int]:
    """Readable reference: ``a*b mod (X^256 + 1, q)`` by the definition.

    X^i * X^j = X^(i+j) when i + j < 256, else -X^(i+j-256).
    """
    out = [0] * DEGREE
    for i, ai in enumerate(a):
        if ai == 0:
            continue
        for j, bj in enumerate(b):
            k = i + j
            if k < DEGREE:
                out[k] += ai * bj
            else:
                out[k - DEGREE] -= ai * bj
    return [x % Q for x in out]


def matvec_ntt_np(mat: Poly, vec: Poly) -> Poly:
    """NTT-domain matrix-vector product: (r, c, 256) x (c, 256) -> (r, 256) (numpy)."""
    prod = mulmod(mat, vec[np.newaxis, :, :])
    out: Poly = np.sum(prod, axis=1) % Q  # c < 2^14 terms below 2^49: no overflow
    return out


def matmul_ntt_np(left: Poly, right: Poly) -> Poly:
    """NTT-domain matrix product: (r, c, 256) x (c, k, 256) -> (r, k, 256) (numpy)."""
    prod = mulmod(left[:, :, np.newaxis, :], right[np.newaxis, :, :, :])
    out: Poly = np.sum(prod, axis=1) % Q
    return out


# The C dispatch.  Each C call checks that every entry is in [0, q) before it
# writes anything and returns False otherwise; the numpy path then runs, so
# out-of-contract input (and any shape the C path does not take) behaves
# exactly as the reference does.


def _is_i64_polys(a: Poly) -> bool:
    return a.dtype == np.int64 and a.ndim >= 1 and a.shape[-1] == DEGREE


def ntt(a: Poly) -> Poly:
    """Forward negacyclic NTT over the last axis (returns a new array); see :func:`ntt_np`."""
    out = np.array(a, dtype=np.int64, copy=True, order="C")
    if (
        _ringfast is not None
        and _is_i64_polys(out)
        and _ringfast.ntt(out, out.size // DEGREE, _ZETAS)
    ):
        return out
    return ntt_np(a)


def intt(a: Poly) -> Poly:
    """Inverse of :func:`ntt` over the last axis (a new array); see :func:`intt_np`."""
    out = np.array(a, dtype=np.int64, copy=True, order="C")
    fast = _ringfast is not None and _is_i64_polys(out)
    if fast and _ringfast.intt(out, out.size // DEGREE, _ZETAS_INV, _N_INV):
        return out
    return intt_np(a)


def _matmul_c(left: Poly, right: Poly) -> Poly | None:
    """(r, c, 256) x (c, k, 256) in C, or None where the C path does not apply."""
    if _ringfast is None or left.ndim != 3 or right.ndim != 3:
        return None
    if not (_is_i64_polys(left) and _is_i64_polys(right)) or left.shape[1] != right.shape[0]:
        return None
    r, c = left.shape[:2]
    k = right.shape[1]
    if max(r, c, k) > 1 << 14:
        return None
    out = np.empty((r, k, DEGREE), dtype=np.int64)
    lc = np.ascontiguousarray(left)
    rc = np.ascontiguousarray(right)
    return out if _ringfast.matmul_ntt(lc, rc, out, r, c, k) else None


def matmul_ntt(left: Poly, right: Poly) -> Poly:
    """NTT-domain matrix product: (r, c, 256) x (c, k, 256) -> (r, k, 256)."""
    out = _matmul_c(left, right)
    return matmul_ntt_np(left, right) if out is None else out


def matvec_ntt(mat: Poly, vec: Poly) -> Poly:
    """NTT-domain matrix-vector product: (r, c, 256) x (c, 256) -> (r, 256)."""
    if vec.ndim == 2:
        out = _matmul_c(mat, vec[:, np.newaxis, :])
        if out is not None:
            return out[:, 0, :]
    return matvec_ntt_np(mat, vec)
