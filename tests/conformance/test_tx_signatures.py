"""The tx_signatures vector file: expected verdicts come from the oracles, not the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapstack.conformance import decode_line, encode_line, run_files, tx_signatures
from zapstack.conformance.envelope import Case
from zapstack.conformance.oracles import ed25519 as ref
from zapstack.conformance.oracles import mldsa65
from zapstack.conformance.runner import run_case
from zapstack.zap.sigschemes import Signer, SigScheme

FILE = Path(__file__).resolve().parents[2] / "vectors" / "pipeline" / "tx_signatures.jsonl"


def _cases() -> list[Case]:
    return [decode_line(line) for line in FILE.read_text(encoding="utf-8").splitlines()]


def test_vector_file_passes_through_the_runner() -> None:
    report = run_files([FILE])[tx_signatures.NAME]
    assert report.failed == 0, report.failures[:1]
    assert report.passed == len(_cases()) >= 90


def test_regeneration_is_byte_identical() -> None:
    cases = tx_signatures.generate(tx_signatures.SEED)
    text = "".join(encode_line(c) + "\n" for c in cases)
    assert text == FILE.read_text(encoding="utf-8")


def test_every_expected_verdict_is_the_oracles() -> None:
    for case in _cases():
        pk, msg, sig = (bytes.fromhex(case.input[k]) for k in ("pk", "msg", "sig"))
        if case.input["scheme"] == "ed25519":
            want = ref.verify_strict(pk, msg, sig)
        else:
            want = mldsa65.verify(pk, msg, sig, bytes.fromhex(case.input.get("ctx", "")))
        assert case.expected == {"valid": want}, case.id


def test_every_category_is_present_with_the_verdicts_it_needs() -> None:
    seen = {(c.input["scheme"], c.input["category"], c.expected["valid"]) for c in _cases()}
    for category in [
        "small-order-a", "small-order-r", "non-canonical-a", "non-canonical-r",
        "s-not-below-l", "mixed-order-a-rejected", "mixed-order-r", "all-zero",
        "random-bytes", "wrong-length", "tampered",
    ]:  # fmt: skip
        assert ("ed25519", category, False) in seen
    assert ("ed25519", "valid", True) in seen
    assert ("ed25519", "mixed-order-a-accepted", True) in seen
    for category in ["valid", "kat"]:
        assert ("mldsa65", category, True) in seen
    for category in ["tampered-sig", "tampered-msg", "tampered-pk", "wrong-length",
                     "kat-without-ctx", "all-zero"]:  # fmt: skip
        assert ("mldsa65", category, False) in seen


def test_edge_cases_are_ones_a_lenient_verifier_would_accept() -> None:
    """The categories bite: the cofactored / cofactorless equations accept some lines."""
    cofactored = cofactorless = 0
    for case in _cases():
        if case.input["scheme"] != "ed25519" or case.expected["valid"]:
            continue
        pk, msg, sig = (bytes.fromhex(case.input[k]) for k in ("pk", "msg", "sig"))
        cofactored += ref.verify_cofactored(pk, msg, sig)
        cofactorless += ref.verify_cofactorless(pk, msg, sig)
    assert cofactored >= 15 and cofactorless >= 5


@pytest.mark.parametrize("lenient", [ref.verify_cofactored, ref.verify_cofactorless])
def test_a_lenient_ed25519_verifier_fails_the_runner(
    lenient: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong(scheme: int, pk: bytes, msg: bytes, sig: bytes) -> bool:
        if scheme == SigScheme.ED25519:
            return bool(lenient(bytes(pk), msg, bytes(sig)))  # type: ignore[operator]
        return False

    monkeypatch.setattr(tx_signatures, "verify_signature", wrong)
    failed = [c.id for c in _cases() if not run_case(c).passed]
    assert any("small-order" in i or "all-zero" in i or "mixed-order" in i for i in failed)


def test_an_mldsa_verifier_ignoring_the_message_fails_the_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = tx_signatures.verify_signature

    def wrong(scheme: int, pk: bytes, msg: bytes, sig: bytes) -> bool:
        if scheme == SigScheme.MLDSA65:
            return len(pk) == 1952 and len(sig) == 3309
        return real(scheme, pk, msg, sig)

    monkeypatch.setattr(tx_signatures, "verify_signature", wrong)
    failed = [c.id for c in _cases() if not run_case(c).passed]
    assert failed and all(i.startswith("mldsa65-") for i in failed)


def test_the_implementation_derives_the_kat_public_keys() -> None:
    """OpenSSL key generation from the FIPS 204 seed xi gives the KAT's public key."""
    for _count, xi, *_rest in tx_signatures.KAT:
        pk, _ = mldsa65.keygen(bytes.fromhex(xi))
        assert Signer(SigScheme.MLDSA65, bytes.fromhex(xi)).public_key == pk
