"""Ringtail parameter set (Boschini et al., IEEE S&P 2025, ePrint 2024/1113).

Contract
--------
* :data:`PARAMS` is the one parameter set zapstack uses for the Corona leg;
  every encoding size below follows from it (see ``docs/formats/ringtail.md``).
* The ring is fixed by :mod:`.ring` (degree 256, q = 2^48 + 18945); a
  :class:`Params` that names another ring is rejected by :meth:`Params.check`.
* ``dbar`` is the number of *extra commitment columns* of D_i (the paper's
  D-bar; D_i has ``dbar + 1`` columns), not a count of dropped bits: the
  dropped bits are ``xi`` (public key) and ``nu`` (commitment h / hint Delta).
* ``bound_sq`` is compared exactly (Python integers) with
  ||z||^2 + ||2^nu * Delta||^2 over centred representatives.
"""

from __future__ import annotations

from dataclasses import dataclass

from zapstack.crypto.ringtail.ring import DEGREE, Q
from zapstack.errors import ConfigError

__all__ = ["PARAMS", "Params"]


@dataclass(frozen=True, slots=True)
class Params:
    """One Ringtail parameter set over R_q = Z_q[X]/(X^256 + 1)."""

    q: int = Q
    """Ring modulus (prime, = 1 mod 512)."""
    degree: int = DEGREE
    """Ring degree N."""
    rows: int = 8
    """Rows of the public matrix A (the paper's m)."""
    cols: int = 7
    """Columns of A = length of the secret s and of z (the paper's n)."""
    dbar: int = 48
    """Extra commitment columns: D_i is rows x (dbar + 1)."""
    kappa: int = 23
    """Hamming weight of the ternary challenge c."""
    xi: int = 30
    """Bits rounded off the public key b (b~ lives in Z_{2^(48-xi)})."""
    nu: int = 29
    """Bits rounded off h and Delta (they live in Z_{2^(48-nu)})."""
    sigma_e: float = 6.108187070284607
    """Width of s, e and of the short columns of R_i, E_i."""
    sigma_star: float = 172852667880.2713
    """Width of the first columns r*, e* of R_i, E_i (the smudging noise)."""
    sigma_u: float = 163961331.5239387
    """Width of the hashed combination vector u (entries 1..dbar)."""
    tail: float = 2.0
    """Every Gaussian is truncated at ``tail * sigma`` (rejection, not clamping)."""
    bound_sq: int = 184960669042442604975662780477
    """Verification bound B^2 on ||z||^2 + ||2^nu Delta||^2."""
    eta_epsilon: float = 2.650104
    """Smoothing constant of the round-2 spread check on sum(D_j)."""

    @property
    def log_q_xi(self) -> int:
        """Bit width of a rounded public-key coefficient (48 - xi)."""
        return 48 - self.xi

    @property
    def log_q_nu(self) -> int:
        """Bit width of a rounded h / Delta coefficient (48 - nu)."""
        return 48 - self.nu

    def check(self) -> None:
        """Raise :class:`ConfigError` unless this set is usable with :mod:`.ring`."""
        rules = {
            "q must be the ring modulus 2^48 + 18945": self.q == Q,
            "degree must be 256": self.degree == DEGREE,
            "rows, cols, dbar must be positive": min(self.rows, self.cols, self.dbar) > 0,
            "kappa must be in 1..64": 1 <= self.kappa <= 64,
            "xi and nu must be in 1..47": 0 < self.xi < 48 and 0 < self.nu < 48,
            "sigmas and tail must be positive": min(
                self.sigma_e, self.sigma_star, self.sigma_u, self.tail
            )
            > 0,
            "bound_sq must be positive": self.bound_sq > 0,
        }
        broken = [rule for rule, ok in rules.items() if not ok]
        if broken:
            raise ConfigError("ringtail params: " + "; ".join(broken))


PARAMS = Params()
"""The zapstack Corona parameter set (the paper's 128-bit set, nu = 29)."""
