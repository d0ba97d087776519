"""A readable Ed25519 model (RFC 8032 §5.1) with the strict rule of zap.md §4.1.

This is the oracle for tx signature validity: pure Python integers, extended
twisted-Edwards coordinates, written from RFC 8032 and the rule text, sharing
no code with :mod:`zapstack.zap.sigschemes` (which calls libsodium).  Slow
(milliseconds per scalar multiplication); fine for vectors and tests.

The strict rule (docs/formats/zap.md §4.1) accepts ``(A, M, sig = R || S)`` iff

1. ``S < L`` (canonical scalar);
2. ``A`` is a canonical encoding (``y < p``; ``x = 0`` with the sign bit set is
   refused) of a curve point that is not of small order (``[8]A != O``);
3. ``R`` is likewise canonical and not of small order;
4. the cofactorless equation holds: ``[S]B == R + [k]A`` with
   ``k = SHA-512(R || A || M) mod L``.

(4) implies the cofactored equation ``[8][S]B == [8]R + [8][k]A``, so a
signature the rule accepts passes both checks: the rule accepts exactly the
signatures on which the cofactored and cofactorless checks agree (and the
points are not small order).  :func:`verify_cofactored` and
:func:`verify_cofactorless` are the two lenient equations, exposed so tests can
show which edge cases a lenient verifier would accept.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "IDENTITY",
    "SMALL_ORDER",
    "B",
    "L",
    "P",
    "Point",
    "challenge",
    "decode_point",
    "decode_point_lenient",
    "encode_point",
    "is_small_order",
    "point_add",
    "points_equal",
    "public_key",
    "scalar_mult",
    "secret_scalar",
    "sign",
    "verify_cofactored",
    "verify_cofactorless",
    "verify_strict",
]

P = 2**255 - 19
"""The field prime."""
L = 2**252 + 27742317777372353535851937790883648493
"""The order of the base point."""
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]
"""Extended coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z."""

IDENTITY: Point = (0, 1, 1, 0)


def point_add(p: Point, q: Point) -> Point:
    """RFC 8032 §5.1.4 addition (complete: also doubles)."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def scalar_mult(s: int, p: Point) -> Point:
    """``[s]p`` by double-and-add."""
    q = IDENTITY
    while s > 0:
        if s & 1:
            q = point_add(q, p)
        p = point_add(p, p)
        s >>= 1
    return q


def points_equal(p: Point, q: Point) -> bool:
    """Projective equality."""
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def _recover_x(y: int, sign: int) -> int | None:
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def decode_point(data: bytes) -> Point | None:
    """RFC 8032 §5.1.3 decoding; None for a non-canonical or off-curve encoding."""
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def decode_point_lenient(data: bytes) -> Point | None:
    """Decoding that reduces ``y`` mod p and ignores a sign bit on ``x = 0``."""
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y = (y & ((1 << 255) - 1)) % P
    x = _recover_x(y, sign)
    if x is None:
        x = _recover_x(y, 0)
        if x != 0:
            return None
    return (x, y, 1, x * y % P)


def encode_point(p: Point) -> bytes:
    """RFC 8032 §5.1.2 encoding."""
    zi = pow(p[2], P - 2, P)
    x, y = p[0] * zi % P, p[1] * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


B: Point = decode_point(((4 * pow(5, P - 2, P)) % P).to_bytes(32, "little"))  # type: ignore[assignment]
"""The base point (y = 4/5, x even)."""


def is_small_order(p: Point) -> bool:
    """``[8]p`` is the identity."""
    return points_equal(scalar_mult(8, p), IDENTITY)


def _small_order_points() -> tuple[Point, ...]:
    """The 8 points of order dividing 8 (the torsion subgroup)."""
    # (sqrt(-1), 0) has order 4; a point of order 8 has y^2 = ... ; find one by
    # multiplying a random-looking point by L (kills the prime-order part).
    for y in range(2, 100):
        q = decode_point(y.to_bytes(32, "little"))
        if q is None:
            continue
        t = scalar_mult(L, q)
        if not points_equal(scalar_mult(4, t), IDENTITY):
            pts = [IDENTITY]
            acc = t
            for _ in range(7):
                pts.append(acc)
                acc = point_add(acc, t)
            return tuple(pts)
    raise AssertionError("no point of order 8 found")  # pragma: no cover


SMALL_ORDER: tuple[Point, ...] = _small_order_points()
"""``[i]T8`` for i = 0..7, with ``T8`` a generator of the torsion subgroup."""


def secret_scalar(seed: bytes) -> tuple[int, bytes]:
    """RFC 8032 §5.1.5: the clamped scalar ``a`` and the nonce prefix of a seed."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def public_key(seed: bytes) -> bytes:
    """RFC 8032 §5.1.5."""
    a, _ = secret_scalar(seed)
    return encode_point(scalar_mult(a, B))


def challenge(r: bytes, a: bytes, msg: bytes) -> int:
    """``k = SHA-512(R || A || M) mod L``."""
    return int.from_bytes(hashlib.sha512(r + a + msg).digest(), "little") % L


def sign(seed: bytes, msg: bytes) -> bytes:
    """RFC 8032 §5.1.6."""
    a, prefix = secret_scalar(seed)
    pk = encode_point(scalar_mult(a, B))
    r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % L
    big_r = encode_point(scalar_mult(r, B))
    s = (r + challenge(big_r, pk, msg) * a) % L
    return big_r + s.to_bytes(32, "little")


def _parts(pk: bytes, sig: bytes, lenient: bool) -> tuple[Point, Point, int] | None:
    if len(pk) != 32 or len(sig) != 64:
        return None
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return None
    dec = decode_point_lenient if lenient else decode_point
    a, r = dec(pk), dec(sig[:32])
    if a is None or r is None:
        return None
    return a, r, s


def verify_cofactorless(pk: bytes, msg: bytes, sig: bytes) -> bool:
    """``[S]B == R + [k]A`` with lenient decoding and no small-order check."""
    parts = _parts(pk, sig, lenient=True)
    if parts is None:
        return False
    a, r, s = parts
    k = challenge(sig[:32], pk, msg)
    return points_equal(scalar_mult(s, B), point_add(r, scalar_mult(k, a)))


def verify_cofactored(pk: bytes, msg: bytes, sig: bytes) -> bool:
    """``[8][S]B == [8]R + [8][k]A`` with lenient decoding and no small-order check."""
    parts = _parts(pk, sig, lenient=True)
    if parts is None:
        return False
    a, r, s = parts
    k = challenge(sig[:32], pk, msg)
    lhs = scalar_mult(8 * s, B)
    rhs = scalar_mult(8, point_add(r, scalar_mult(k, a)))
    return points_equal(lhs, rhs)


def verify_strict(pk: bytes, msg: bytes, sig: bytes) -> bool:
    """The zap.md §4.1 rule (see the module docstring)."""
    parts = _parts(pk, sig, lenient=False)
    if parts is None:
        return False
    a, r, s = parts
    if is_small_order(a) or is_small_order(r):
        return False
    k = challenge(sig[:32], pk, msg)
    return points_equal(scalar_mult(s, B), point_add(r, scalar_mult(k, a)))
