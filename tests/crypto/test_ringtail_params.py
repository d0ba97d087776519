"""The parameter set: the values of DECISIONS.md / the paper, and the derived sizes."""

from __future__ import annotations

import dataclasses
from decimal import Decimal, getcontext

import pytest

from zapstack.crypto.ringtail import PARAMS, GroupPublicKey, Params, Signature
from zapstack.errors import ConfigError


def test_values() -> None:
    p = PARAMS
    assert (p.q, p.degree, p.rows, p.cols) == (2**48 + 18945, 256, 8, 7)
    assert (p.dbar, p.kappa, p.xi, p.nu) == (48, 23, 30, 29)
    assert p.bound_sq == 184960669042442604975662780477
    assert abs(p.sigma_e - 6.108) < 1e-3
    assert abs(p.sigma_star / 1.7285e11 - 1) < 1e-4
    assert abs(p.sigma_u / 1.6396e8 - 1) < 1e-4
    assert (p.log_q_xi, p.log_q_nu) == (18, 19)


def test_bound_is_the_square_of_b() -> None:
    getcontext().prec = 50
    b = Decimal("430070539612332.205811372782969")  # the paper's B = 2^48.61
    assert abs(b * b - Decimal(PARAMS.bound_sq)) < Decimal(10) ** 15


def test_sizes() -> None:
    assert Signature.encoded_len() == 32 + 7 * 256 * 6 + 8 * 256 * 19 // 8 == 15648
    assert GroupPublicKey.encoded_len() == 32 + 8 * 256 * 18 // 8


@pytest.mark.parametrize(
    "change",
    [
        {"q": 12289},
        {"degree": 512},
        {"kappa": 0},
        {"kappa": 65},
        {"xi": 48},
        {"nu": 0},
        {"sigma_u": 0.0},
        {"dbar": 0},
        {"bound_sq": 0},
    ],
)
def test_check_rejects(change: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        dataclasses.replace(PARAMS, **change).check()  # type: ignore[arg-type]


def test_default_passes() -> None:
    Params().check()
