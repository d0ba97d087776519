"""Conformance suite ``tx_signatures``: which tx signatures are valid.

Line schema: ``docs/formats/vectors-tx-signatures.md``.  One line = one
``(scheme, pk, msg, sig)`` and the verdict every implementation must reach.

Expected verdicts never come from the code under test:

* Ed25519 -- the readable RFC 8032 model with the strict rule of zap.md §4.1,
  :func:`zapstack.conformance.oracles.ed25519.verify_strict`;
* ML-DSA-65 -- ``dilithium-py``, a pure-Python FIPS 204 implementation sharing
  no code with OpenSSL (which the implementation verifies with).  Its key
  derivation and deterministic signing are pinned to three FIPS 204
  known-answer entries (:data:`KAT`), which appear verbatim in the file.

The generator builds each Ed25519 edge-case category the way
``tests/zap/test_sigschemes.py`` does.  It needs ``dilithium-py`` (a dev
dependency); :func:`run_case` does not.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from typing import Any

from zapstack.conformance.envelope import Case
from zapstack.conformance.oracles import ed25519 as ref
from zapstack.crypto import mldsa
from zapstack.errors import ConfigError
from zapstack.zap.sigschemes import SigScheme, verify_signature

__all__ = ["KAT", "NAME", "SEED", "generate", "run_case"]

NAME = "tx_signatures"
SEED = 0x7A5_16_01

SCHEMES: dict[str, SigScheme] = {"ed25519": SigScheme.ED25519, "mldsa65": SigScheme.MLDSA65}
"""The ``scheme`` field -> the scheme id of zap.md §4."""

RFC8032_TEST1 = (
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
    "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
)
"""RFC 8032 §7.1 TEST 1: secret seed and the signature of the empty message."""

KAT: tuple[tuple[int, str, str, str, str, str], ...] = (
    (
        0,
        "f696484048ec21f96cf50a56d0759c448f3779752f0383d37449690694cf7a68",
        "6dbbc4375136df3b07f7c70e639e223e",
        "480c658c0cb3e040bde084345cef0df7",
        "ab0f27cfe4f84d2a9fa74d48467439df9e5dd8401f8715f82ed70e43a371400a",
        "413e6b4eac737e0406fa3849b9263480667ad6123580f80e4fd3da81bda993bb",
    ),
    (
        1,
        "6de62e3465a55c9c78a07d265be8540b3e58b0801a124d07ff12b438d5202ea0",
        "d69cfc64f84d4f33e4c54e166b7ff9283a394986a539b23987a10f39d2d9689b",
        "0121cb32acd1871135cb34e29c1a0e26",
        "7492efc0fe061dd862f3d2df3f9df030b143766ef056ff14bba44a4f0089ff1d",
        "296309f4d6d7028f8980d8b7390a0dc093601b75f6e4dfe567fa4cbb351a8152",
    ),
    (
        2,
        "1eaae6bb91b27cd748c402c4111140d5a942cf3c95ff7977f88d2ef515bb26d0",
        "63470357110828f25b23edc80ed280ecd398a9f53251c3332754de2af0b15e90"
        "1a43ac1d7f898991f0e86b404a1e2ab2",
        "01f985e18f93d8cdee7c3e4b428c8358",
        "1a07e19eb0a9bf16faa9171421d7619b2d1d10bfd0325b35c2da12ddb70bf546",
        "c4fed8c729107b09e9ae209dc909ed58829b17c836ba6affe09678a8c133c749",
    ),
)
"""FIPS 204 ML-DSA-65 known answers (deterministic, pure): ``(count, xi, msg, ctx,
sha256(pk), sha256(sig))`` from ``kat_MLDSA_65_det_pure.rsp`` of the
``cryptography-vectors`` 50.0.2 package.  The generator re-derives pk and sig
with dilithium-py and refuses to write the file unless both hashes match."""


def run_case(case: Case) -> dict[str, Any]:
    """Verify the line's signature with the implementation; ``{"valid": bool}``."""
    inp = case.input
    scheme = SCHEMES.get(inp["scheme"])
    if scheme is None:
        raise ConfigError(f"tx_signatures: unknown scheme {inp['scheme']!r}")
    pk, msg, sig = (bytes.fromhex(inp[k]) for k in ("pk", "msg", "sig"))
    ctx = bytes.fromhex(inp.get("ctx", ""))
    if ctx:  # only the FIPS 204 known answers carry a context; txs sign with none
        if scheme is not SigScheme.MLDSA65:
            raise ConfigError("tx_signatures: ctx is defined for mldsa65 only")
        return {"valid": mldsa.verify(pk, msg, sig, ctx)}
    return {"valid": verify_signature(scheme, pk, msg, sig)}


# -- generator ----------------------------------------------------------------------

Line = tuple[str, bytes, bytes, bytes]
"""(category, pk, msg, sig)."""


def _msgs(n: int, tag: bytes) -> list[bytes]:
    return [hashlib.sha256(tag + i.to_bytes(4, "big")).digest() for i in range(n)]


def _ed_sig(big_r: bytes, s: int) -> bytes:
    return big_r + s.to_bytes(32, "little")


def _valid(rng: random.Random) -> Iterator[Line]:
    seed, sig = (bytes.fromhex(h) for h in RFC8032_TEST1)
    if ref.sign(seed, b"") != sig:
        raise AssertionError("the Ed25519 model disagrees with RFC 8032 TEST 1")
    yield "valid", ref.public_key(seed), b"", sig
    for msg in _msgs(5, b"valid"):
        seed = rng.randbytes(32)
        sig = ref.sign(seed, msg)
        yield "valid", ref.public_key(seed), msg, sig
        if msg[0] & 1:
            yield "tampered", ref.public_key(seed), msg, sig[:5] + bytes([sig[5] ^ 1]) + sig[6:]
        else:
            yield "tampered", ref.public_key(seed), bytes(32), sig


def _small_order_a() -> Iterator[Line]:
    """Each small-order A with R = [r]B, S = r; the message a lenient check accepts."""
    r = 12345
    sig = _ed_sig(ref.encode_point(ref.scalar_mult(r, ref.B)), r)
    for point in ref.SMALL_ORDER:
        pk = ref.encode_point(point)
        msgs = _msgs(24, b"small-A")
        fooling = [m for m in msgs if ref.verify_cofactorless(pk, m, sig)]
        yield "small-order-a", pk, (fooling or msgs)[0], sig


def _small_order_r() -> Iterator[Line]:
    """Each small-order R with S = k*a: passes the cofactored equation."""
    seed = bytes(range(32))
    pk = ref.public_key(seed)
    a, _ = ref.secret_scalar(seed)
    for point, msg in zip(ref.SMALL_ORDER, _msgs(8, b"small-R"), strict=True):
        big_r = ref.encode_point(point)
        yield "small-order-r", pk, msg, _ed_sig(big_r, ref.challenge(big_r, pk, msg) * a % ref.L)


def _non_canonical() -> Iterator[Line]:
    """y >= p (both sign bits) and x = 0 with the sign bit set, as A and as R."""
    seed = bytes(range(1, 33))
    msg = _msgs(1, b"nc")[0]
    good, pk = ref.sign(seed, msg), ref.public_key(seed)
    encodings = [
        (ref.P + low | sign << 255).to_bytes(32, "little")
        for low in (0, 1, 4, 18)
        for sign in (0, 1)
    ]
    encodings += [(y | 1 << 255).to_bytes(32, "little") for y in (1, ref.P - 1)]
    for enc in encodings:
        yield "non-canonical-a", enc, msg, good
        yield "non-canonical-r", pk, msg, enc + good[32:]


def _s_not_below_l() -> Iterator[Line]:
    seed = bytes(range(2, 34))
    pk = ref.public_key(seed)
    for msg in _msgs(2, b"S>=L"):
        sig = ref.sign(seed, msg)
        s = int.from_bytes(sig[32:], "little")
        yield "s-not-below-l", pk, msg, _ed_sig(sig[:32], s + ref.L)
    yield "s-not-below-l", pk, msg, _ed_sig(sig[:32], ref.L)
    yield "s-not-below-l", pk, msg, sig[:32] + b"\xff" * 32


def _mixed_order() -> Iterator[Line]:
    """A + T and R + T (T of order 8): a cofactored verifier accepts every one."""
    seed = bytes(range(3, 35))
    a, _ = ref.secret_scalar(seed)
    torsion = ref.SMALL_ORDER[1]
    pk = ref.encode_point(ref.point_add(ref.scalar_mult(a, ref.B), torsion))
    taken = {True: 0, False: 0}
    for msg in _msgs(40, b"mixed-A"):
        r = int.from_bytes(hashlib.sha512(b"r" + msg).digest(), "little") % ref.L
        big_r = ref.encode_point(ref.scalar_mult(r, ref.B))
        sig = _ed_sig(big_r, (r + ref.challenge(big_r, pk, msg) * a) % ref.L)
        verdict = ref.verify_strict(pk, msg, sig)
        if taken[verdict] < 3:
            taken[verdict] += 1
            yield "mixed-order-a-" + ("accepted" if verdict else "rejected"), pk, msg, sig
    honest = ref.public_key(seed)
    for msg in _msgs(3, b"mixed-R"):
        r = int.from_bytes(hashlib.sha512(b"r" + msg).digest(), "little") % ref.L
        big_r = ref.encode_point(ref.point_add(ref.scalar_mult(r, ref.B), torsion))
        yield (
            "mixed-order-r",
            honest,
            msg,
            _ed_sig(big_r, (r + ref.challenge(big_r, honest, msg) * a) % ref.L),
        )


def _junk(rng: random.Random) -> Iterator[Line]:
    for msg in _msgs(6, b"zero"):
        yield "all-zero", bytes(32), msg, bytes(64)
    for _ in range(6):
        yield "random-bytes", rng.randbytes(32), rng.randbytes(32), rng.randbytes(64)
    seed = rng.randbytes(32)
    pk, msg = ref.public_key(seed), rng.randbytes(32)
    sig = ref.sign(seed, msg)
    yield "wrong-length", pk[:31], msg, sig
    yield "wrong-length", pk, msg, sig[:63]
    yield "wrong-length", pk, msg, sig + b"\x00"


def _ed25519_cases(rng: random.Random) -> list[Case]:
    lines = [
        *_valid(rng),
        *_small_order_a(),
        *_small_order_r(),
        *_non_canonical(),
        *_s_not_below_l(),
        *_mixed_order(),
        *_junk(rng),
    ]
    counts: dict[str, int] = {}
    cases = []
    for category, pk, msg, sig in lines:
        n = counts[category] = counts.get(category, 0) + 1
        inp = {
            "scheme": "ed25519",
            "category": category,
            "pk": pk.hex(),
            "msg": msg.hex(),
            "sig": sig.hex(),
        }
        expected = {"valid": ref.verify_strict(pk, msg, sig)}
        cases.append(Case(NAME, f"ed25519-{category}-{n:02d}", inp, expected))
    return cases


def _mldsa_lines() -> Iterator[tuple[str, bytes, bytes, bytes, bytes]]:
    """(category, pk, msg, sig, ctx) for ML-DSA-65."""
    from zapstack.conformance.oracles import mldsa65

    for count, xi, msg_hex, ctx_hex, pk_hash, sig_hash in KAT:
        pk, sk = mldsa65.keygen(bytes.fromhex(xi))
        msg, ctx = bytes.fromhex(msg_hex), bytes.fromhex(ctx_hex)
        sig = mldsa65.sign(sk, msg, ctx)
        if hashlib.sha256(pk).hexdigest() != pk_hash or hashlib.sha256(sig).hexdigest() != sig_hash:
            raise AssertionError(f"dilithium-py disagrees with FIPS 204 KAT count {count}")
        yield "kat", pk, msg, sig, ctx
        yield "kat-without-ctx", pk, msg, sig, b""
    for i in range(2):
        pk, sk = mldsa65.keygen(hashlib.sha256(b"tx_signatures/mldsa65/%d" % i).digest())
        msg = _msgs(2, b"mldsa")[i]
        sig = mldsa65.sign(sk, msg)
        yield "valid", pk, msg, sig, b""
        yield "tampered-sig", pk, msg, sig[:100] + bytes([sig[100] ^ 0x10]) + sig[101:], b""
        yield "tampered-msg", pk, bytes(32), sig, b""
        yield "tampered-pk", pk[:-1] + bytes([pk[-1] ^ 1]), msg, sig, b""
    yield "wrong-length", pk, msg, sig[:-1], b""
    yield "wrong-length", pk, msg, sig + b"\x00", b""
    yield "wrong-length", pk[:-1], msg, sig, b""
    yield "all-zero", bytes(1952), msg, bytes(3309), b""


def _mldsa_cases() -> list[Case]:
    from zapstack.conformance.oracles import mldsa65

    counts: dict[str, int] = {}
    cases = []
    for category, pk, msg, sig, ctx in _mldsa_lines():
        n = counts[category] = counts.get(category, 0) + 1
        inp = {
            "scheme": "mldsa65",
            "category": category,
            "pk": pk.hex(),
            "msg": msg.hex(),
            "sig": sig.hex(),
        }
        if ctx:
            inp["ctx"] = ctx.hex()
        expected = {"valid": mldsa65.verify(pk, msg, sig, ctx)}
        cases.append(Case(NAME, f"mldsa65-{category}-{n:02d}", inp, expected))
    return cases


def generate(seed: int) -> list[Case]:
    """Every case; Ed25519 keys and junk bytes are drawn from ``seed``."""
    rng = random.Random(seed)
    return _ed25519_cases(rng) + _mldsa_cases()
