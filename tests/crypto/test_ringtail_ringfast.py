"""The C extension ``_ringfast`` against the numpy references and big-integer evaluation.

Expected values come from ``ring.ntt_np`` / ``intt_np`` / ``matmul_ntt_np`` /
``matvec_ntt_np`` (held to schoolbook multiplication in test_ringtail_ring.py)
and, for the forward transform, from evaluating the polynomial at the odd
powers of psi with Python integers.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from zapstack.crypto.ringtail import ring, sampling
from zapstack.crypto.ringtail.ring import DEGREE, PSI, Q

pytestmark = pytest.mark.skipif(not ring.FAST, reason="the _ringfast extension is not built")

EDGES = [0, 1, 2, Q - 1, Q - 2, (1 << 48) - 1, 1 << 48, (1 << 48) + 18944, 1 << 24]
coeff = st.one_of(st.sampled_from(EDGES), st.integers(min_value=0, max_value=Q - 1))
batch = st.lists(st.integers(min_value=1, max_value=3), min_size=0, max_size=3)


def polys(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.int64, (*shape, DEGREE), elements=coeff)


def _brv8(k: int) -> int:
    return int(f"{k:08b}"[::-1], 2)


def _eval_ntt(a: list[int]) -> list[int]:
    """Slot k = a(psi^(2*brv8(k)+1)) mod q, by Horner's rule on Python integers."""
    out = []
    for k in range(DEGREE):
        x = pow(PSI, 2 * _brv8(k) + 1, Q)
        acc = 0
        for c in reversed(a):
            acc = (acc * x + c) % Q
        out.append(acc)
    return out


@settings(max_examples=40, deadline=None)
@given(st.data(), batch)
def test_ntt_intt_equal_numpy(data: st.DataObject, shape: list[int]) -> None:
    a = data.draw(polys(tuple(shape)))
    before = a.copy()
    fwd = ring.ntt(a)
    assert fwd.dtype == np.int64 and fwd.shape == a.shape
    assert np.array_equal(fwd, ring.ntt_np(a))
    back = ring.intt(a)
    assert np.array_equal(back, ring.intt_np(a))
    assert np.array_equal(ring.intt(fwd), a)  # round trip
    assert np.array_equal(a, before)  # inputs untouched


def test_ntt_equals_evaluation_at_edges() -> None:
    rng = np.random.default_rng(7)
    rows = [np.full(DEGREE, Q - 1), rng.choice(np.array(EDGES), DEGREE)]
    a = np.array(rows, dtype=np.int64)
    got = ring.ntt(a)
    for row, slots in zip(a, got, strict=True):
        assert slots.tolist() == _eval_ntt([int(c) for c in row])


@settings(max_examples=25, deadline=None)
@given(
    st.data(),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=0, max_value=4),
    st.integers(min_value=1, max_value=4),
)
def test_matmul_matvec_equal_numpy(data: st.DataObject, r: int, c: int, k: int) -> None:
    left = data.draw(polys((r, c)))
    right = data.draw(polys((c, k)))
    got = ring.matmul_ntt(left, right)
    assert got.shape == (r, k, DEGREE) and got.dtype == np.int64
    assert np.array_equal(got, ring.matmul_ntt_np(left, right))
    vec = right[:, 0, :]
    mv = ring.matvec_ntt(left, vec)
    assert mv.shape == (r, DEGREE)
    assert np.array_equal(mv, ring.matvec_ntt_np(left, vec))


def test_matmul_at_max_entries_and_bigint() -> None:
    left = np.full((2, 3, DEGREE), Q - 1, dtype=np.int64)
    right = np.full((3, 2, DEGREE), Q - 1, dtype=np.int64)
    assert np.all(ring.matmul_ntt(left, right) == (3 * (Q - 1) ** 2) % Q)


def test_non_contiguous_and_broadcast_inputs_fall_back_equal() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, Q, size=(4, 2 * DEGREE), dtype=np.int64)[:, ::2]  # strided view
    assert np.array_equal(ring.ntt(a), ring.ntt_np(a))
    left = rng.integers(0, Q, size=(2, 1, DEGREE), dtype=np.int64)
    right = rng.integers(0, Q, size=(3, 2, DEGREE), dtype=np.int64)  # c broadcasts 1 -> 3
    assert np.array_equal(ring.matmul_ntt(left, right), ring.matmul_ntt_np(left, right))
    lt = np.transpose(rng.integers(0, Q, size=(3, 2, DEGREE), dtype=np.int64), (1, 0, 2))
    assert np.array_equal(ring.matmul_ntt(lt, right), ring.matmul_ntt_np(lt, right))


def test_out_of_range_input_gives_the_numpy_result() -> None:
    a = np.arange(2 * DEGREE, dtype=np.int64).reshape(2, DEGREE)
    a[1, 5] = -3
    a[0, 7] = Q + 11
    assert np.array_equal(ring.ntt(a), ring.ntt_np(a))
    assert np.array_equal(ring.intt(a), ring.intt_np(a))
    m = a.reshape(1, 2, DEGREE)
    assert np.array_equal(
        ring.matmul_ntt(m, m.reshape(2, 1, DEGREE)), ring.matmul_ntt_np(m, m.reshape(2, 1, DEGREE))
    )


def test_extension_rejects_bad_buffers() -> None:
    from zapstack.crypto.ringtail import _ringfast

    zetas = ring._ZETAS
    with pytest.raises(ValueError, match="expected"):
        _ringfast.ntt(np.zeros(DEGREE + 1, dtype=np.int64), 1, zetas)
    with pytest.raises(ValueError, match="expected"):
        _ringfast.ntt(np.zeros(DEGREE, dtype=np.int32), 1, zetas)
    with pytest.raises(ValueError, match="count"):
        _ringfast.intt(np.zeros(DEGREE, dtype=np.int64), -1, zetas, 1)
    with pytest.raises((BufferError, TypeError)):
        _ringfast.ntt(bytes(8 * DEGREE), 1, zetas)
    with pytest.raises(ValueError, match="dimensions"):
        _ringfast.matmul_ntt(b"", b"", bytearray(), -1, 0, 0)
    bad = np.zeros(DEGREE, dtype=np.int64)
    bad[3] = Q
    assert _ringfast.ntt(bad, 1, zetas) is False and bad[3] == Q and not bad[:3].any()


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).view(np.uint64)


def test_polar_block_bit_identical_on_millions_of_samples() -> None:
    """4M XOF words (2M pairs, 4M candidate normals): every double equal bit for bit."""
    words = sampling.Xof(b"ringfast polar").peek_words(4_000_000)
    got_x, got_keep = sampling._polar_block(words, 2.0)
    ref_x, ref_keep = sampling._polar_block_np(words, 2.0)
    assert np.array_equal(_bits(got_x), _bits(ref_x))
    assert np.array_equal(got_keep, ref_keep)
    assert 0.5 < got_keep.mean() < 0.8  # the block really accepts and rejects


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([0, 1, 2047, 2048, 1 << 63, (1 << 63) - 1, (1 << 64) - 1]),
            st.integers(min_value=0, max_value=(1 << 64) - 1),
        ),
        min_size=2,
        max_size=64,
    ).filter(lambda w: len(w) % 2 == 0),
    st.sampled_from([0.5, 1.0, 2.0, 6.0]),
)
def test_polar_block_bit_identical_on_edge_words(words: list[int], tail: float) -> None:
    w = np.array(words, dtype=np.uint64)
    got_x, got_keep = sampling._polar_block(w, tail)
    ref_x, ref_keep = sampling._polar_block_np(w, tail)
    assert np.array_equal(_bits(got_x), _bits(ref_x))
    assert np.array_equal(got_keep, ref_keep)


def test_gaussian_equal_with_and_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = sampling.gaussian(sampling.Xof(b"g"), 172852667880.2713, 20_000, 2.0)
    monkeypatch.setattr(sampling, "_ringfast", None)
    ref = sampling.gaussian(sampling.Xof(b"g"), 172852667880.2713, 20_000, 2.0)
    assert np.array_equal(fast, ref)
    assert np.abs(ref).max() <= 2.0 * 172852667880.2713 + 1


def test_polar_block_rejects_bad_buffers() -> None:
    from zapstack.crypto.ringtail import _ringfast

    w = np.zeros(4, dtype=np.uint64)
    x = np.empty((2, 2), dtype=np.float64)
    with pytest.raises(ValueError, match="keep"):
        _ringfast.polar_block(w, 2, 2.0, x, np.empty(3, dtype=np.bool_))
    with pytest.raises(ValueError, match="expected"):
        _ringfast.polar_block(w, 3, 2.0, x, np.empty(6, dtype=np.bool_))
    with pytest.raises(ValueError, match="pair count"):
        _ringfast.polar_block(w, -1, 2.0, x, np.empty(4, dtype=np.bool_))
