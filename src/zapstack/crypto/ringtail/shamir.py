"""Shamir t-of-n secret sharing of a vector over R_q, and Lagrange coefficients.

Contract
--------
* :func:`share` splits a secret ``s`` (int64 array, any shape, entries in
  [0, q)) with a degree t-1 polynomial f(x) = s + a_1 x + ... + a_{t-1}
  x^{t-1} whose coefficients a_k are uniform in [0, q) entry-wise (drawn
  from the given XOF, a_1 first, row-major); party i (1-based) gets f(i).
  Sharing is entry-wise, so it is the same as sharing over R_q with
  constant evaluation points.
* :func:`lagrange_at_zero` gives lambda_i with sum_{i in T} lambda_i f(i) =
  f(0) for any set T of t distinct indices; it raises
  :class:`LocalProtocolError` on duplicate, zero or negative indices.
* :func:`reconstruct` is the test oracle (the protocol never reconstructs s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from zapstack.crypto.ringtail.ring import Q, addmod, mulmod
from zapstack.crypto.ringtail.sampling import Xof, uniform_mod_q
from zapstack.errors import LocalProtocolError

__all__ = ["lagrange_at_zero", "reconstruct", "share"]

I64 = npt.NDArray[np.int64]


def share(secret: I64, n: int, t: int, xof: Xof) -> list[I64]:
    """Shares f(1), ..., f(n) of ``secret`` with threshold ``t``."""
    if not 1 <= t <= n < Q:
        raise LocalProtocolError(f"need 1 <= t <= n, got t={t}, n={n}")
    coeffs = [secret] + [
        uniform_mod_q(xof, secret.size).reshape(secret.shape) for _ in range(t - 1)
    ]
    shares: list[I64] = []
    for x in range(1, n + 1):
        acc = coeffs[-1].copy()
        for coeff in reversed(coeffs[:-1]):  # Horner: acc = acc*x + coeff
            acc = addmod(mulmod(acc, x), coeff)
        shares.append(acc)
    return shares


def lagrange_at_zero(index: int, signers: Sequence[int]) -> int:
    """lambda_index = prod_{j != index} j / (j - index) mod q over ``signers``."""
    if len(set(signers)) != len(signers) or min(signers, default=1) < 1:
        raise LocalProtocolError("signer indices must be distinct and >= 1")
    if index not in signers:
        raise LocalProtocolError(f"party {index} is not among the signers")
    num, den = 1, 1
    for j in signers:
        if j != index:
            num = num * j % Q
            den = den * (j - index) % Q
    return num * pow(den, Q - 2, Q) % Q


def reconstruct(shares: Mapping[int, I64]) -> I64:
    """f(0) from a mapping index -> f(index) (test oracle)."""
    signers = sorted(shares)
    acc = np.zeros_like(shares[signers[0]])
    for i in signers:
        acc = addmod(acc, mulmod(shares[i], lagrange_at_zero(i, signers)))
    return acc
