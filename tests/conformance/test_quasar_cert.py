"""The quasar_cert vector file: expected outcomes come from the QuasarCert oracle."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapstack.conformance import decode_line, encode_line, quasar_cert, run_files
from zapstack.conformance.envelope import Case
from zapstack.conformance.oracles import quasar_cert as ref
from zapstack.conformance.runner import run_case
from zapstack.consensus import cert as cert_mod
from zapstack.consensus.legs import bls as bls_leg
from zapstack.consensus.legs import quorum
from zapstack.errors import InvalidCert

FILE = Path(__file__).resolve().parents[2] / "vectors" / "pipeline" / "quasar_cert.jsonl"


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return [decode_line(line) for line in FILE.read_text(encoding="utf-8").splitlines()]


def _failed(cases: list[Case]) -> set[str]:
    return {c.id for c in cases if not run_case(c).passed}


def test_vector_file_passes_through_the_runner(cases: list[Case]) -> None:
    report = run_files([FILE])[quasar_cert.NAME]
    assert report.failed == 0, report.failures[:1]
    assert report.passed == len(cases) >= 40


def test_regeneration_is_byte_identical() -> None:
    text = "".join(encode_line(c) + "\n" for c in quasar_cert.generate(quasar_cert.SEED))
    assert text == FILE.read_text(encoding="utf-8")


def _model(case: Case) -> ref.VSet:
    keys = ("bls_pk", "bls_pop", "mldsa_pk", "slhdsa_pk")
    validators = [
        {"weight": v["weight"], **{k: bytes.fromhex(v[k]) for k in keys}}
        for v in case.input["validators"]
    ]
    return ref.VSet(validators, case.input["slh_params"], bytes.fromhex(case.input["corona_pk"]))


def test_every_expected_outcome_is_the_oracles(cases: list[Case]) -> None:
    for case in cases:
        cert, block = bytes.fromhex(case.input["cert"]), bytes.fromhex(case.input["block"])
        assert case.expected == ref.expected(cert, _model(case), block), case.id


def test_outcomes_cover_every_leg_mode_and_reject(cases: list[Case]) -> None:
    outcomes = {c.expected["outcome"] for c in cases}
    assert outcomes == {"valid", "invalid", "malformed"}
    bad_legs = {c.expected["leg"] for c in cases if c.expected["outcome"] == "invalid"}
    assert bad_legs == {"", *ref.LEGS}
    met = {m for c in cases if c.expected["outcome"] == "valid" for m in c.expected["meets"]}
    assert met == set(ref.MODES)
    order = list(ref.MODES)  # weakest first within each variant
    tops = set()
    for c in cases:
        for variant in ("hybrid", "pure-pq"):
            mine = [m for m in c.expected.get("meets", []) if ref.MODES[m][0] == variant]
            if mine:
                tops.add(max(mine, key=order.index))
    assert set(ref.MODES) <= tops  # a cert at each tier, not only ones above it


def test_a_decoder_that_allows_trailing_bytes_fails_the_runner(
    cases: list[Case], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cert_mod.decode

    def lenient(data: bytes) -> cert_mod.QuasarCert:
        for cut in range(len(data) + 1):  # the longest prefix that decodes
            try:
                return real(data[: len(data) - cut])
            except InvalidCert:
                continue
        raise InvalidCert("nothing decodes")

    monkeypatch.setattr(quasar_cert, "decode", lenient)
    assert {"qcert-trailing-byte", "qcert-zero-padding"} <= _failed(cases)


def test_a_bitmap_reader_that_ignores_non_members_fails_the_runner(
    cases: list[Case], monkeypatch: pytest.MonkeyPatch
) -> None:
    def lenient(n: int, bitmap: bytes, *, leg: str = "") -> list[int]:
        bits = [i for i in range(8 * len(bitmap)) if bitmap[i >> 3] & (0x80 >> (i & 7))]
        return [i for i in bits if i < n]

    monkeypatch.setattr(bls_leg, "decode_bitmap", lenient)
    monkeypatch.setattr(quorum, "decode_bitmap", lenient)
    assert "qcert-bad-bls-non-member-bit" in _failed(cases)
