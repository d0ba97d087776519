"""R_q arithmetic: limb multiplication and the NTT against readable references."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.crypto.ringtail import ring
from zapstack.crypto.ringtail.ring import (
    DEGREE,
    PSI,
    Q,
    addmod,
    center,
    intt,
    mulmod,
    mulmod_limbs,
    mulmod_reference,
    negmod,
    ntt,
    poly_mul,
    schoolbook_mul,
    submod,
)

coeff = st.integers(min_value=0, max_value=Q - 1)
poly = st.lists(coeff, min_size=DEGREE, max_size=DEGREE)
EDGES = [0, 1, 2, Q - 1, Q - 2, (1 << 48) - 1, 1 << 48, (1 << 48) + 18944, 1 << 24, (1 << 24) - 1]


def test_modulus_and_root() -> None:
    assert Q == 2**48 + 18945 and (Q - 1) % 512 == 0
    assert pow(PSI, 256, Q) == Q - 1  # primitive 512th root: psi^256 = -1
    assert pow(PSI, 512, Q) == 1


def test_mulmod_edges_equal_bigint() -> None:
    a = np.array(EDGES, dtype=np.int64)
    got = mulmod(a[:, None], a[None, :])
    for i, x in enumerate(EDGES):
        for j, y in enumerate(EDGES):
            assert int(got[i, j]) == mulmod_reference(x, y)


@given(st.lists(st.tuples(coeff, coeff), min_size=1, max_size=64))
def test_mulmod_equals_bigint(pairs: list[tuple[int, int]]) -> None:
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    assert mulmod(a, b).tolist() == [mulmod_reference(x, y) for x, y in pairs]


@given(st.lists(st.tuples(coeff, coeff), min_size=1, max_size=64))
def test_mulmod_limbs_equals_bigint(pairs: list[tuple[int, int]]) -> None:
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    assert mulmod_limbs(a, b).tolist() == [mulmod_reference(x, y) for x, y in pairs]


@given(st.lists(st.tuples(st.integers(1, Q - 1), st.integers(-3, 3)), min_size=1, max_size=64))
def test_mulmod_at_quotient_boundaries(pairs: list[tuple[int, int]]) -> None:
    # b = d / a (mod q): a*b lands within 3 of a multiple of q, where a float
    # quotient estimate is most likely off by one -- the corrections must hold
    a = np.array([x for x, _ in pairs], dtype=np.int64)
    b = np.array([(d * pow(x, -1, Q)) % Q for x, d in pairs], dtype=np.int64)
    assert mulmod(a, b).tolist() == [d % Q for _, d in pairs]


def test_mulmod_equals_limbs_on_a_million_products() -> None:
    rng = np.random.default_rng(20261205)
    a = rng.integers(0, Q, size=1 << 20, dtype=np.int64)
    b = rng.integers(0, Q, size=1 << 20, dtype=np.int64)
    assert np.array_equal(mulmod(a, b), mulmod_limbs(a, b))


@given(st.lists(st.tuples(coeff, coeff), min_size=1, max_size=64))
def test_add_sub_neg_center(pairs: list[tuple[int, int]]) -> None:
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    assert addmod(a, b).tolist() == [(x + y) % Q for x, y in pairs]
    assert submod(a, b).tolist() == [(x - y) % Q for x, y in pairs]
    assert negmod(a).tolist() == [(-x) % Q for x, _ in pairs]
    c = center(a)
    assert all(
        -Q // 2 <= v <= Q // 2 and v % Q == x for v, (x, _) in zip(c.tolist(), pairs, strict=True)
    )


@settings(max_examples=15, deadline=None)
@given(poly, poly)
def test_ntt_product_equals_schoolbook(a: list[int], b: list[int]) -> None:
    got = poly_mul(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))
    assert got.tolist() == schoolbook_mul(a, b)


@settings(max_examples=25, deadline=None)
@given(poly)
def test_intt_inverts_ntt(a: list[int]) -> None:
    arr = np.array(a, dtype=np.int64)
    assert intt(ntt(arr)).tolist() == a


def test_ntt_slot_is_evaluation_at_odd_root_powers() -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(0, Q, DEGREE)
    hat = ntt(a)
    for k in (0, 1, 2, 77, 128, 255):
        x = pow(PSI, 2 * ring._brv8(k) + 1, Q)
        assert int(hat[k]) == sum(int(c) * pow(x, i, Q) for i, c in enumerate(a.tolist())) % Q


def test_x_times_x255_is_minus_one() -> None:
    x = [0] * DEGREE
    x[1] = 1
    y = [0] * DEGREE
    y[255] = 1
    expect = [Q - 1] + [0] * (DEGREE - 1)
    assert schoolbook_mul(x, y) == expect
    assert poly_mul(np.array(x), np.array(y)).tolist() == expect


def test_batched_ntt_equals_per_polynomial() -> None:
    rng = np.random.default_rng(3)
    batch = rng.integers(0, Q, (3, 4, DEGREE))
    whole = ntt(batch)
    for i in range(3):
        for j in range(4):
            assert np.array_equal(whole[i, j], ntt(batch[i, j]))
