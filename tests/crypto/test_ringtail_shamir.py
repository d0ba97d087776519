"""Shamir sharing over R_q: any t shares reconstruct, t-1 do not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from zapstack.crypto.ringtail.ring import Q
from zapstack.crypto.ringtail.sampling import Xof, uniform_mod_q
from zapstack.crypto.ringtail.shamir import lagrange_at_zero, reconstruct, share
from zapstack.errors import LocalProtocolError


def _secret() -> np.ndarray:
    return uniform_mod_q(Xof(b"secret"), 2 * 256).reshape(2, 256)


@pytest.mark.parametrize(("n", "t"), [(5, 3), (6, 4), (4, 4), (3, 1)])
def test_every_t_subset_reconstructs(n: int, t: int) -> None:
    s = _secret()
    shares = share(s, n, t, Xof(b"coeffs"))
    for subset in itertools.combinations(range(1, n + 1), t):
        assert np.array_equal(reconstruct({i: shares[i - 1] for i in subset}), s)


def test_t_minus_one_shares_do_not_reconstruct() -> None:
    s = _secret()
    shares = share(s, 5, 3, Xof(b"coeffs"))
    for subset in itertools.combinations(range(1, 6), 2):
        assert not np.array_equal(reconstruct({i: shares[i - 1] for i in subset}), s)


def test_lagrange_sums_to_one() -> None:
    signers = [2, 5, 9, 11]
    assert sum(lagrange_at_zero(i, signers) for i in signers) % Q == 1


@pytest.mark.parametrize(("index", "signers"), [(1, [1, 1, 2]), (0, [0, 1]), (4, [1, 2, 3])])
def test_lagrange_rejects(index: int, signers: list[int]) -> None:
    with pytest.raises(LocalProtocolError):
        lagrange_at_zero(index, signers)


def test_share_rejects_bad_threshold() -> None:
    with pytest.raises(LocalProtocolError):
        share(_secret(), 3, 4, Xof(b"x"))
