"""Types of the optional C extension ``zapstack.crypto.ringtail._ringfast``."""

from typing import Any

def ntt(buf: Any, npolys: int, zetas: Any) -> bool:
    """Forward NTT in place on npolys * 256 int64; False (untouched) if an entry is >= q."""

def intt(buf: Any, npolys: int, zetas_inv: Any, n_inv: int) -> bool:
    """Inverse NTT in place; False (untouched) if an entry is not in [0, q)."""

def matmul_ntt(left: Any, right: Any, out: Any, r: int, c: int, k: int) -> bool:
    """(r, c, 256) x (c, k, 256) -> out (r, k, 256); False if an entry is not in [0, q)."""

def polar_block(words: Any, npairs: int, tail: float, x_out: Any, keep_out: Any) -> None:
    """sampling._polar_block_np into x_out (npairs, 2) float64 and keep_out (npairs, 2) bool."""
