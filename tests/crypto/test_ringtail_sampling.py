"""Samplers: vectorised code equals a one-value-at-a-time reading of the spec."""

from __future__ import annotations

import hashlib
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.crypto.ringtail.ring import Q
from zapstack.crypto.ringtail.sampling import (
    Xof,
    challenge,
    det_log,
    gaussian,
    gaussian_bytes,
    uniform_mod_q,
)


class _Stream:
    """The XOF as the format doc defines it: SHAKE256 output read from offset 0."""

    def __init__(self, data: bytes) -> None:
        self.out = hashlib.shake_256(data).digest(1 << 20)
        self.pos = 0

    def word(self) -> int:
        w = int.from_bytes(self.out[self.pos : self.pos + 8], "little")
        self.pos += 8
        return w


def _ref_log(s: float) -> float:
    m, e = math.frexp(s)
    if m < 0.7071067811865476:
        m, e = m * 2.0, e - 1
    y = (m - 1.0) / (m + 1.0)
    y2 = y * y
    acc = 1.0 / 21
    for k in range(9, -1, -1):
        acc = acc * y2 + 1.0 / (2 * k + 1)
    return e * 0.6931471805599453 + (2.0 * y) * acc


def _ref_gaussian(stream: _Stream, sigma: float, count: int, tail: float) -> list[int]:
    out: list[int] = []
    while len(out) < count:
        v1 = float(2 * (stream.word() >> 11) + 1 - (1 << 53)) / float(1 << 53)
        v2 = float(2 * (stream.word() >> 11) + 1 - (1 << 53)) / float(1 << 53)
        s = v1 * v1 + v2 * v2
        if s >= 1.0:
            continue
        f = math.sqrt((_ref_log(s) * -2.0) / s)
        for x in (v1 * f, v2 * f):
            if abs(x) <= tail and len(out) < count:
                out.append(math.floor(x * sigma + 0.5))
    return out


def _ref_uniform(stream: _Stream, count: int) -> list[int]:
    out: list[int] = []
    while len(out) < count:
        w = stream.word()
        if w < (2**64 // Q) * Q:
            out.append(w % Q)
    return out


@settings(max_examples=20, deadline=None)
@given(
    st.binary(max_size=8),
    st.sampled_from([6.108187070284607, 163961331.5239387, 1.0]),
    st.integers(1, 300),
)
def test_gaussian_equals_reference(seed: bytes, sigma: float, count: int) -> None:
    got = gaussian(Xof(seed), sigma, count)
    assert got.tolist() == _ref_gaussian(_Stream(seed), sigma, count, 2.0)


def test_gaussian_consumes_exactly_the_pairs_it_uses() -> None:
    xof, ref = Xof(b"k"), _Stream(b"k")
    for count in (5, 1, 33):
        assert gaussian(xof, 3.0, count).tolist() == _ref_gaussian(ref, 3.0, count, 2.0)
    assert xof.read(8) == ref.out[ref.pos : ref.pos + 8]


@settings(max_examples=30, deadline=None)
@given(
    st.binary(max_size=8),
    st.lists(st.tuples(st.booleans(), st.integers(0, 5000)), min_size=1, max_size=12),
)
def test_reserve_never_changes_the_stream(seed: bytes, ops: list[tuple[bool, int]]) -> None:
    """Reserving ahead (any size, any time) only changes when bytes are squeezed."""
    xof = Xof(seed)
    out, pos = b"", 0
    for reserve, n in ops:
        if reserve:
            xof.reserve(n)
        else:
            out += xof.read(n)
            pos += n
    assert out == hashlib.shake_256(seed).digest(pos)


def test_gaussian_bytes_is_what_gaussian_first_reads() -> None:
    for count in (1, 256, 1792, 100_352):
        xof = Xof(b"g")
        xof.reserve(gaussian_bytes(count))
        squeezed = len(xof._buf)
        gaussian(xof, 6.0, count)
        assert xof._pos <= squeezed  # the reserved bytes covered it: nothing regrown
        assert gaussian_bytes(count) == 16 * (int(count / 1.45) + 8)


@given(st.binary(max_size=8), st.integers(0, 500))
def test_uniform_equals_reference(seed: bytes, count: int) -> None:
    xof, ref = Xof(seed), _Stream(seed)
    assert uniform_mod_q(xof, count).tolist() == _ref_uniform(ref, count)
    assert xof.read(8) == ref.out[ref.pos : ref.pos + 8]


def test_det_log_accuracy_and_reference_agreement() -> None:
    xs = np.exp(np.linspace(-70.0, -1e-9, 20001))
    got = det_log(xs)
    assert float(np.max(np.abs(got - np.log(xs)) / np.abs(np.log(xs)))) < 1e-13
    for x in xs[::997].tolist():
        assert det_log(np.array([x]))[0] == _ref_log(x)


def test_gaussian_is_truncated_and_has_the_right_width() -> None:
    sigma = 6.108187070284607
    g = gaussian(Xof(b"width"), sigma, 50000)
    assert int(np.abs(g).max()) <= math.floor(2 * sigma + 0.5)
    # A Gaussian truncated at 2 sigma has standard deviation 0.8796 sigma.
    assert abs(float(g.std()) / sigma - 0.8796) < 0.02
    assert abs(float(g.mean())) < 0.1


def test_challenge_weight_signs_and_determinism() -> None:
    for seed in (bytes(32), b"\x01" * 32, b"abc"):
        c = challenge(seed, 23)
        assert int(np.count_nonzero(c)) == 23
        assert set(c.tolist()) <= {-1, 0, 1}
        assert np.array_equal(c, challenge(seed, 23))
    assert not np.array_equal(challenge(bytes(32), 23), challenge(b"\x01" * 32, 23))


def test_uniform_range() -> None:
    u = uniform_mod_q(Xof(b"r"), 10000)
    assert int(u.min()) >= 0 and int(u.max()) < Q
    assert int(u.max()) > Q // 2  # spans the range


def test_known_answers() -> None:
    """Pinned in docs/formats/ringtail.md for a second implementation."""
    sigma_e, sigma_star = 6.108187070284607, 172852667880.2713
    assert gaussian(Xof(b"zapstack"), sigma_e, 8).tolist() == [5, -2, 4, 8, 1, 9, 3, -5]
    assert gaussian(Xof(b"zapstack"), sigma_star, 4).tolist() == [
        144088994049,
        -52513698697,
        111518860883,
        237877146052,
    ]
    assert uniform_mod_q(Xof(b"zapstack"), 4).tolist() == [
        70043985240349,
        276009012912678,
        9054484848666,
        258610569936692,
    ]
    c = challenge(bytes(32), 23)
    assert [i for i, v in enumerate(c.tolist()) if v == 1] == [4, 69, 88, 100, 104, 141, 238]
