"""Cross-checks of Ringtail that do not rest on our own known answers.

The known answers of ``docs/formats/ringtail.md`` §7 are this implementation's
own output.  These tests check what can be checked independently:

* the NTT product against a negacyclic schoolbook product written here (not
  :func:`zapstack.crypto.ringtail.ring.schoolbook_mul`), and the NTT slots
  against direct evaluation at the documented roots;
* a signature against the verification equation of ringtail.md §5 (the
  paper's, with the hint Δ), computed by :func:`reference_verify`: a small
  routine written from ringtail.md §2-§6 alone with Python integers and
  ``hashlib`` (Â expanded from ρ, the NTT domain undone by interpolation,
  A·z by evaluation, Ball, rounding, the encodings, the hashes).  It shares no
  code with :mod:`zapstack.crypto.ringtail`.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest

from zapstack.crypto.ringtail import GroupPublicKey, deal, sign_in_process, verify
from zapstack.crypto.ringtail.ring import ntt, poly_mul

N, Q = 256, 2**48 + 18945
ROWS, COLS, KAPPA, XI, NU = 8, 7, 23, 30, 29
B_SQUARED = 184960669042442604975662780477
PSI = pow(11, (Q - 1) // 512, Q)
MSG = b"zapstack corona leg transcript digest.."


def negacyclic(a: list[int], b: list[int]) -> list[int]:
    """a·b in Z_q[X]/(X^256 + 1): X^256 = -1."""
    out = [0] * N
    for i in range(N):
        for j in range(N):
            sign = 1 if i + j < N else -1
            out[(i + j) % N] += sign * a[i] * b[j]
    return [x % Q for x in out]


def brv8(k: int) -> int:
    return int(f"{k:08b}"[::-1], 2)


ROOTS = [pow(PSI, 2 * brv8(k) + 1, Q) for k in range(N)]
"""ringtail.md §2: slot k is the evaluation at ψ^(2·brv8(k)+1)."""


def evaluate(a: list[int]) -> list[int]:
    out = []
    for x in ROOTS:
        acc = 0
        for c in reversed(a):
            acc = (acc * x + c) % Q
        out.append(acc)
    return out


def interpolate(slots: list[int]) -> list[int]:
    """Coefficients from slots: a_i = (1/256) Σ_k slot_k · x_k^(−i) (the x_k are distinct roots)."""
    inv_n = pow(N, Q - 2, Q)
    inv_roots = [pow(x, Q - 2, Q) for x in ROOTS]
    powers = [1] * N
    coeffs = []
    for _ in range(N):
        coeffs.append(sum(s * p for s, p in zip(slots, powers, strict=True)) * inv_n % Q)
        powers = [p * r % Q for p, r in zip(powers, inv_roots, strict=True)]
    return coeffs


# ------------------------------------------------------------------ ringtail.md §3-§6


def tag(name: str) -> bytes:
    return b"zapstack/ringtail/v1/" + name.encode() + b"\x00"


def xof(name: str, data: bytes, n: int) -> bytes:
    return hashlib.shake_256(tag(name) + data).digest(n)


def uniform_a(rho: bytes) -> list[list[list[int]]]:
    """Â: 8·7·256 uniform values mod q from XOF128, rejecting words ≥ 65535·q."""
    count = ROWS * COLS * N
    stream = hashlib.shake_128(tag("A") + rho).digest(8 * count * 2)
    vals: list[int] = []
    for at in range(0, len(stream), 8):
        w = int.from_bytes(stream[at : at + 8], "little")
        if w < 65535 * Q:
            vals.append(w % Q)
            if len(vals) == count:
                break
    assert len(vals) == count
    return [
        [vals[(i * COLS + j) * N : (i * COLS + j + 1) * N] for j in range(COLS)]
        for i in range(ROWS)
    ]


def unpack(data: bytes, count: int, width: int) -> list[int]:
    bits = int.from_bytes(data, "little")
    return [(bits >> (width * i)) & ((1 << width) - 1) for i in range(count)]


def pack(values: list[int], width: int) -> bytes:
    bits = sum(v << (width * i) for i, v in enumerate(values))
    return bits.to_bytes((len(values) * width + 7) // 8, "little")


def ball(c_tilde: bytes) -> list[int]:
    stream = xof("ball", c_tilde, 4096)
    signs, at = int.from_bytes(stream[:8], "little"), 8
    c = [0] * N
    for i in range(N - KAPPA, N):
        while stream[at] > i:
            at += 1
        j = stream[at]
        at += 1
        c[i], c[j] = c[j], 1 - 2 * (signs & 1)
        signs >>= 1
    return c


def round_bits(x: int, d: int) -> int:
    return ((x + (1 << (d - 1))) >> d) % (1 << (48 - d))


def reference_verify(pk: bytes, message: bytes, sig: bytes) -> bool:
    """ringtail.md §5 "Verify", from the doc alone."""
    if len(pk) != 32 + 18 * ROWS * N // 8 or len(sig) != 32 + 6 * COLS * N + 19 * ROWS * N // 8:
        return False
    rho, b_tilde = pk[:32], unpack(pk[32:], ROWS * N, 18)
    c_tilde = sig[:32]
    raw_z = sig[32 : 32 + 6 * COLS * N]
    z = [int.from_bytes(raw_z[6 * i : 6 * i + 6], "little", signed=True) for i in range(COLS * N)]
    delta = [
        d - (1 << 19) if d >= 1 << 18 else d for d in unpack(sig[32 + 6 * COLS * N :], ROWS * N, 19)
    ]
    if pack([d % (1 << 19) for d in delta], 19) != sig[32 + 6 * COLS * N :]:
        return False  # non-zero padding
    if any(abs(v) >= 1 << 47 for v in z):
        return False
    if sum(v * v for v in z) + sum((d << NU) ** 2 for d in delta) > B_SQUARED:
        return False
    a_hat = uniform_a(rho)
    z_slots = [evaluate([v % Q for v in z[j * N : (j + 1) * N]]) for j in range(COLS)]
    c = [v % Q for v in ball(c_tilde)]
    h: list[int] = []
    for i in range(ROWS):
        az_slots = [sum(a_hat[i][j][k] * z_slots[j][k] for j in range(COLS)) % Q for k in range(N)]
        az = interpolate(az_slots)
        b_i = [(v << XI) % Q for v in b_tilde[i * N : (i + 1) * N]]
        cb = negacyclic_sparse(c, b_i)
        w = [(x - y) % Q for x, y in zip(az, cb, strict=True)]
        h += [
            (round_bits(v, NU) + d) % (1 << 19)
            for v, d in zip(w, delta[i * N : (i + 1) * N], strict=True)
        ]
    pk_digest = xof("pk", pk, 32)
    return xof("c", pk_digest + pack(h, 19) + message, 32) == c_tilde


def negacyclic_sparse(c: list[int], b: list[int]) -> list[int]:
    out = [0] * N
    for i, ci in enumerate(c):
        if ci:
            for j in range(N):
                sign = 1 if i + j < N else -1
                out[(i + j) % N] += sign * ci * b[j]
    return [x % Q for x in out]


# ------------------------------------------------------------------ tests


def test_ntt_product_equals_a_schoolbook_product_written_here() -> None:
    rng = random.Random(202)
    for _ in range(3):
        a = [rng.randrange(Q) for _ in range(N)]
        b = [rng.randrange(Q) for _ in range(N)]
        assert poly_mul(np.array(a), np.array(b)).tolist() == negacyclic(a, b)


def test_ntt_slots_are_evaluations_and_interpolation_inverts_them() -> None:
    rng = random.Random(203)
    a = [rng.randrange(Q) for _ in range(N)]
    assert ntt(np.array(a)).tolist() == evaluate(a)
    assert interpolate(evaluate(a)) == a


@pytest.fixture(scope="module")
def signed() -> tuple[GroupPublicKey, bytes]:
    pk, shares = deal(5, 3, b"zapstack-ringtail-kat-seed-00001")
    sig = sign_in_process([shares[0], shares[2], shares[4]], MSG, b"height=7/round=0", b"r" * 32)
    return pk, sig


def test_the_signature_satisfies_the_documented_equation(
    signed: tuple[GroupPublicKey, bytes],
) -> None:
    pk, sig = signed
    assert verify(pk, MSG, sig)
    assert reference_verify(pk.to_bytes(), MSG, sig)


@pytest.mark.parametrize("at", [0, 31, 32, 5000, 32 + 6 * COLS * N + 7])
def test_a_tampered_signature_fails_both_verifiers(
    signed: tuple[GroupPublicKey, bytes], at: int
) -> None:
    pk, sig = signed
    bad = sig[:at] + bytes([sig[at] ^ 0x04]) + sig[at + 1 :]
    assert not reference_verify(pk.to_bytes(), MSG, bad)
    assert not verify(pk, MSG, bad)


def test_another_message_fails_both(signed: tuple[GroupPublicKey, bytes]) -> None:
    pk, sig = signed
    assert not reference_verify(pk.to_bytes(), MSG + b"!", sig)
    assert not verify(pk, MSG + b"!", sig)
