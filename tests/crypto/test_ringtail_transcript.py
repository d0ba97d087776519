"""Hash functions: determinism, shapes, domain separation."""

from __future__ import annotations

import numpy as np

from zapstack.crypto.ringtail import PARAMS
from zapstack.crypto.ringtail.ring import Q
from zapstack.crypto.ringtail.transcript import (
    commitment_digest,
    expand_a,
    hash_c,
    hash_u,
    mask_prf,
    nonce_xof,
    pk_digest,
    session_digest,
    sid_digest,
)


def test_expand_a_shape_range_determinism() -> None:
    a = expand_a(b"r" * 32, PARAMS)
    assert a.shape == (8, 7, 256)
    assert int(a.min()) >= 0 and int(a.max()) < Q
    assert np.array_equal(a, expand_a(b"r" * 32, PARAMS))
    assert not np.array_equal(a, expand_a(b"s" * 32, PARAMS))


def test_hash_u_first_entry_is_one() -> None:
    u = hash_u(b"d" * 32, b"msg", PARAMS)
    assert u.shape == (49, 256)
    assert u[0, 0] == 1 and not u[0, 1:].any()
    assert not np.array_equal(u, hash_u(b"d" * 32, b"msh", PARAMS))


def test_domain_separation() -> None:
    x = b"x" * 32
    digests = {pk_digest(x), sid_digest(x), hash_c(x, b"", b""), session_digest(x, x, [], [])}
    assert len(digests) == 4
    assert nonce_xof(x, 1, b"a", x).read(32) != nonce_xof(x, 2, b"a", x).read(32)
    assert nonce_xof(x, 1, b"a", x).read(32) != nonce_xof(x, 1, b"b", x).read(32)
    # session id and rng seed are length-separated
    assert nonce_xof(x, 1, b"ab", b"c" * 32).read(32) != nonce_xof(
        x, 1, b"a", b"b" + b"c" * 32
    ).read(32)


def test_session_digest_binds_signers_and_commitments() -> None:
    x = b"x" * 32
    base = session_digest(x, x, [1, 2], [b"a", b"b"])
    assert base != session_digest(x, x, [1, 3], [b"a", b"b"])
    assert base != session_digest(x, x, [1, 2], [b"a", b"c"])


def test_mask_prf() -> None:
    m = mask_prf(b"k" * 32, b"d" * 32, b"m", PARAMS)
    assert m.shape == (7, 256) and int(m.max()) < Q
    assert not np.array_equal(m, mask_prf(b"k" * 32, b"d" * 32, b"n", PARAMS))


def test_commitment_digest_is_tagged_sha256() -> None:
    import hashlib

    d = commitment_digest(b"D" * 100)
    assert d == hashlib.sha256(b"zapstack/ringtail/v1/commit\x00" + b"D" * 100).digest()
    assert commitment_digest(memoryview(b"D" * 100)) == d


def test_expand_a_known_answer() -> None:
    """Pinned in docs/formats/ringtail.md."""
    assert expand_a(bytes(32), PARAMS)[0, 0, :4].tolist() == [
        142303902766119,
        137897330939464,
        267579692707943,
        273392588068628,
    ]
