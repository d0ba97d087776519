"""Tx signature validity: the strict Ed25519 rule (zap.md §4.1) and ML-DSA-65.

Expected verdicts come from the readable model
:mod:`zapstack.conformance.oracles.ed25519`, never from the code under test.
Each edge-case category is built so that a lenient verifier would accept at
least some of its cases (the model's cofactored / cofactorless checks show
which), and the strict rule's verdict is checked against the model's.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from zapstack.conformance.oracles import ed25519 as ref
from zapstack.errors import WireCode, ZapError
from zapstack.zap.frames import build_transfer, parse_tx
from zapstack.zap.sigschemes import Signer, SigScheme, verify_signature

ED = SigScheme.ED25519


def _msgs(n: int, tag: bytes) -> list[bytes]:
    return [hashlib.sha256(tag + i.to_bytes(4, "big")).digest() for i in range(n)]


def _agree(pk: bytes, msg: bytes, sig: bytes) -> bool:
    """Assert the implementation gives the model's verdict; return that verdict."""
    expected = ref.verify_strict(pk, msg, sig)
    assert verify_signature(ED, pk, msg, sig) is expected, (pk.hex(), msg.hex(), sig.hex())
    return expected


def test_valid_signatures_agree_with_the_model_and_rfc8032() -> None:
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    assert ref.public_key(seed).hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )  # RFC 8032 §7.1 TEST 1
    rng = random.Random(1)
    for msg in _msgs(8, b"valid"):
        seed = rng.randbytes(32)
        signer = Signer(ED, seed)
        sig = signer.sign(msg)
        assert signer.public_key == ref.public_key(seed) and sig == ref.sign(seed, msg)
        assert _agree(signer.public_key, msg, sig)
        flipped = sig[:5] + bytes([sig[5] ^ 1]) + sig[6:]
        assert not _agree(signer.public_key, msg, flipped)


def test_all_zero_key_and_signature_are_rejected_for_every_message() -> None:
    """The spend-from-anyone hole: OpenSSL accepted this for ~1 message in 4."""
    lenient_accepts = 0
    for msg in _msgs(64, b"zero"):
        assert not _agree(bytes(32), msg, bytes(64))
        lenient_accepts += ref.verify_cofactorless(bytes(32), msg, bytes(64))
    assert lenient_accepts > 0  # the category is real: a lenient verifier is fooled


def test_small_order_public_keys_are_rejected() -> None:
    """Every small-order A, with an R/S pair a lenient verifier accepts."""
    r_scalar = 12345
    big_r = ref.encode_point(ref.scalar_mult(r_scalar, ref.B))
    sig = big_r + r_scalar.to_bytes(32, "little")  # [S]B = R, so it needs [k]A = O
    fooled = 0
    for point in ref.SMALL_ORDER:
        pk = ref.encode_point(point)
        for msg in _msgs(16, b"small-A"):
            assert not _agree(pk, msg, sig)
            fooled += ref.verify_cofactorless(pk, msg, sig)
    assert fooled > 0


def test_small_order_r_is_rejected() -> None:
    """R = a small-order point, S chosen so the cofactored check passes."""
    seed = bytes(range(32))
    pk = ref.public_key(seed)
    a, _ = ref.secret_scalar(seed)
    fooled = 0
    for point in ref.SMALL_ORDER:
        big_r = ref.encode_point(point)
        for msg in _msgs(4, b"small-R"):
            s = ref.challenge(big_r, pk, msg) * a % ref.L
            sig = big_r + s.to_bytes(32, "little")
            assert not _agree(pk, msg, sig)
            fooled += ref.verify_cofactored(pk, msg, sig)
    assert fooled == 8 * 4  # every one passes the cofactored equation


def test_non_canonical_encodings_are_rejected() -> None:
    # y >= p: the 19 non-canonical y values (both sign bits) as A and as R
    seed = bytes(range(1, 33))
    msg = _msgs(1, b"nc")[0]
    good = ref.sign(seed, msg)
    pk = ref.public_key(seed)
    for low in range(19):
        for sign in (0, 1):
            enc = (ref.P + low | sign << 255).to_bytes(32, "little")
            assert not _agree(enc, msg, good)
            assert not _agree(pk, msg, enc + good[32:])
    # x = 0 with the sign bit set ("negative zero"): y = 1 and y = p - 1
    for y in (1, ref.P - 1):
        assert not _agree((y | 1 << 255).to_bytes(32, "little"), msg, good)


def test_s_not_below_l_is_rejected() -> None:
    seed = bytes(range(2, 34))
    pk = ref.public_key(seed)
    for msg in _msgs(4, b"S>=L"):
        sig = ref.sign(seed, msg)
        s = int.from_bytes(sig[32:], "little")
        big = sig[:32] + (s + ref.L).to_bytes(32, "little")
        assert ref.verify_cofactorless(pk, msg, sig)
        assert not _agree(pk, msg, big)
    assert not _agree(pk, msg, sig[:32] + b"\xff" * 32)


def test_mixed_order_keys_and_r_follow_the_cofactorless_equation() -> None:
    """A + T or R + T (T of order 8): the rule accepts only where both checks agree."""
    seed = bytes(range(3, 35))
    a, _ = ref.secret_scalar(seed)
    torsion = ref.SMALL_ORDER[1]
    mixed_a = ref.point_add(ref.scalar_mult(a, ref.B), torsion)
    pk = ref.encode_point(mixed_a)
    verdicts = []
    for msg in _msgs(40, b"mixed-A"):
        r = int.from_bytes(hashlib.sha512(b"r" + msg).digest(), "little") % ref.L
        big_r = ref.encode_point(ref.scalar_mult(r, ref.B))
        s = (r + ref.challenge(big_r, pk, msg) * a) % ref.L
        sig = big_r + s.to_bytes(32, "little")
        assert ref.verify_cofactored(pk, msg, sig)  # a cofactored verifier takes all
        verdict = _agree(pk, msg, sig)
        assert verdict == ref.verify_cofactorless(pk, msg, sig)
        verdicts.append(verdict)
    assert any(verdicts) and not all(verdicts)  # 8 | k accepts, the rest rejects
    honest_pk = ref.public_key(seed)
    for msg in _msgs(8, b"mixed-R"):
        r = int.from_bytes(hashlib.sha512(b"r" + msg).digest(), "little") % ref.L
        big_r = ref.encode_point(ref.point_add(ref.scalar_mult(r, ref.B), torsion))
        s = (r + ref.challenge(big_r, honest_pk, msg) * a) % ref.L
        sig = big_r + s.to_bytes(32, "little")
        assert ref.verify_cofactored(honest_pk, msg, sig)
        assert not _agree(honest_pk, msg, sig)


def test_wrong_lengths_and_unknown_schemes_are_false_never_raise() -> None:
    signer = Signer(ED, bytes(32))
    msg = bytes(32)
    sig = signer.sign(msg)
    assert verify_signature(ED, signer.public_key, msg, sig)
    assert verify_signature(ED, memoryview(signer.public_key), msg, bytearray(sig))
    assert not verify_signature(ED, signer.public_key[:31], msg, sig)
    assert not verify_signature(ED, signer.public_key, msg, sig[:63])
    assert not verify_signature(ED, signer.public_key, msg, sig + b"\x00")
    assert not verify_signature(ED, b"", msg, b"")
    assert not verify_signature(SigScheme.NONE, b"", msg, b"")
    assert not verify_signature(99, signer.public_key, msg, sig)


def test_mldsa65_signatures_verify_and_tampering_fails() -> None:
    signer = Signer(SigScheme.MLDSA65, bytes(range(32)))
    msg = _msgs(1, b"mldsa")[0]
    sig = signer.sign(msg)
    assert verify_signature(SigScheme.MLDSA65, signer.public_key, msg, sig)
    assert not verify_signature(SigScheme.MLDSA65, signer.public_key, bytes(32), sig)
    assert not verify_signature(SigScheme.MLDSA65, signer.public_key[:-1], msg, sig)


def test_verification_is_thread_safe() -> None:
    signers = [Signer(ED, bytes([i]) * 32) for i in range(4)]
    jobs = [(s, m, s.sign(m)) for s in signers for m in _msgs(50, b"threads")]

    def check(job: tuple[Signer, bytes, bytes]) -> bool:
        s, m, sig = job
        return verify_signature(ED, s.public_key, m, sig)

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(check, jobs))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_byte_strings_agree_with_the_model(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20):
        pk, msg, sig = rng.randbytes(32), rng.randbytes(32), rng.randbytes(64)
        assert not _agree(pk, msg, sig)


def _interleavings(check: Callable[[], bool], per_thread: int = 200) -> int:
    """Run ``check`` on two threads with a 30 s GIL switch interval; count a<->b switches.

    With so long an interval the interpreter never takes the GIL from a thread;
    it changes hands only when the holder releases it.  A check that holds the
    GIL gives ``aaa...bbb`` (one switch), one that releases it interleaves.
    """
    order: list[str] = []

    def work(tag: str) -> None:
        for _ in range(per_thread):
            assert check()
            order.append(tag)

    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        sys.setswitchinterval(old)
    assert len(order) == 2 * per_thread
    return sum(1 for x, y in itertools.pairwise(order) if x != y)


def test_ed25519_verification_releases_the_gil() -> None:
    """libsodium through cffi runs without the GIL: the verify pool's threads overlap."""
    signer = Signer(ED, bytes(range(32)))
    msg = _msgs(1, b"gil")[0]
    sig = signer.sign(msg)
    verify = lambda: verify_signature(ED, signer.public_key, msg, sig)  # noqa: E731
    assert _interleavings(verify, per_thread=1000) > 1  # (how many depends on the load)
    # the probe itself tells the two apart: the pure-Python model holds the GIL
    slow = ref.sign(bytes(range(32)), msg)
    pk = ref.public_key(bytes(range(32)))
    assert _interleavings(lambda: ref.verify_strict(pk, msg, slow), per_thread=3) == 1


def test_a_tx_from_the_all_zero_key_with_an_all_zero_signature_never_parses() -> None:
    """The issue's must-show at the frame level: 64 txs (64 transcripts), all refused."""
    signer = Signer(ED, bytes(range(32)))
    for nonce in range(64):
        raw = bytearray(build_transfer(signer, bytes(32), 1, 1, nonce))
        at = bytes(raw).index(signer.public_key)
        raw[at : at + 32] = bytes(32)  # the all-zero public key (a point of order 4)
        raw[-64:] = bytes(64)  # the all-zero signature (R of order 4, S = 0)
        with pytest.raises(ZapError) as info:
            parse_tx(bytes(raw))
        assert info.value.code is WireCode.BAD_SIGNATURE
