"""The checked-in ``cert_tiers`` vectors pass and regenerate byte-identically."""

from __future__ import annotations

from pathlib import Path

from zapstack.conformance import cert_tiers, encode_line, run_files

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "pipeline" / "cert_tiers.jsonl"


def test_checked_in_vectors_pass() -> None:
    reports = run_files([VECTORS])
    report = reports[cert_tiers.NAME]
    assert report.failed == 0, report.failures[:2]
    assert report.passed >= 60


def test_regeneration_is_byte_identical() -> None:
    text = "".join(encode_line(c) + "\n" for c in cert_tiers.generate(cert_tiers.SEED))
    assert text == VECTORS.read_text(encoding="utf-8")


def test_suite_covers_every_action_and_mode() -> None:
    cases = cert_tiers.generate(cert_tiers.SEED)
    assert len({c.id for c in cases}) == len(cases)
    actions = {c.expected["final"]["action"] for c in cases}
    assert actions == {"finalize", "fallback-finalize", "wait"}
    assert {c.input["policy"]["Mode"] for c in cases} >= {
        "PQ-off", "PQ-fast", "PQ-strict", "PQ-heavy",
        "strict-PQ-fast", "strict-PQ-strict", "strict-PQ-heavy",
    }  # fmt: skip


def test_a_tampered_expectation_fails() -> None:
    case = cert_tiers.generate(cert_tiers.SEED)[0]
    assert cert_tiers.run_case(case) == case.expected
    wrong = dict(case.expected, transitions=[])
    assert cert_tiers.run_case(case) != wrong
