"""The Ed25519 oracle against RFC 8032 and an independent library (cryptography)."""

from __future__ import annotations

import random

from cryptography.hazmat.primitives.asymmetric import ed25519

from zapstack.conformance.oracles import ed25519 as ref

# RFC 8032 §7.1, TEST 2 and TEST 3
RFC = [
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


def test_rfc8032_vectors() -> None:
    for seed, pk, msg, sig in RFC:
        s, m = bytes.fromhex(seed), bytes.fromhex(msg)
        assert ref.public_key(s).hex() == pk
        assert ref.sign(s, m).hex() == sig
        assert ref.verify_strict(bytes.fromhex(pk), m, bytes.fromhex(sig))


def test_model_equals_an_independent_library_on_honest_keys() -> None:
    rng = random.Random(7)
    for _ in range(6):
        seed, msg = rng.randbytes(32), rng.randbytes(rng.randrange(0, 80))
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        assert ref.public_key(seed) == key.public_key().public_bytes_raw()
        assert ref.sign(seed, msg) == key.sign(msg)


def test_torsion_subgroup() -> None:
    pts = ref.SMALL_ORDER
    assert len({ref.encode_point(p) for p in pts}) == 8
    assert all(ref.is_small_order(p) for p in pts)
    assert not ref.is_small_order(ref.B)
    assert ref.points_equal(ref.scalar_mult(ref.L, ref.B), ref.IDENTITY)
    assert ref.points_equal(ref.scalar_mult(8, pts[1]), ref.IDENTITY)
    assert not ref.points_equal(ref.scalar_mult(4, pts[1]), ref.IDENTITY)


def test_decoding_rules() -> None:
    assert ref.decode_point(ref.P.to_bytes(32, "little")) is None  # y = p: not canonical
    assert ref.decode_point_lenient(ref.P.to_bytes(32, "little")) is not None  # y = 0
    neg_zero = (1 | 1 << 255).to_bytes(32, "little")  # identity with the sign bit
    assert ref.decode_point(neg_zero) is None
    assert ref.decode_point_lenient(neg_zero) is not None
    assert ref.decode_point(b"\x00" * 31) is None
    b_enc = ref.encode_point(ref.B)
    assert (
        ref.decode_point(b_enc) is not None and ref.encode_point(ref.decode_point(b_enc)) == b_enc
    )  # type: ignore[arg-type]
