"""The checked-in ``cert_tiers`` vectors pass and regenerate byte-identically."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from zapstack.conformance import cert_tiers, encode_line, run_files
from zapstack.conformance.runner import run_case
from zapstack.consensus import policy as policy_mod

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
    actions = {c.expected["final"]["action"] for c in cases if "final" in c.expected}
    assert actions == {"finalize", "fallback-finalize", "wait"}
    assert {c.input["policy"]["Mode"] for c in cases if "final" in c.expected} >= {
        "PQ-off", "PQ-fast", "PQ-strict", "PQ-heavy",
        "strict-PQ-fast", "strict-PQ-strict", "strict-PQ-heavy",
    }  # fmt: skip


def test_a_tampered_expectation_fails() -> None:
    case = cert_tiers.generate(cert_tiers.SEED)[0]
    assert cert_tiers.run_case(case) == case.expected
    wrong = dict(case.expected, transitions=[])
    assert cert_tiers.run_case(case) != wrong


def test_every_reject_code_is_exercised() -> None:
    errors = {c.expected.get("error") for c in cert_tiers.generate(cert_tiers.SEED)}
    assert errors >= {"RULE_1", "RULE_2", "RULE_3", "BAD_POLICY", "BAD_EVENTS", "BAD_INPUT"}


def _failures() -> set[str]:
    return {c.id for c in cert_tiers.generate(cert_tiers.SEED) if not run_case(c).passed}


def test_expected_values_do_not_come_from_the_tracker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracker that ignores Fallback still generates the same file, and fails it."""
    real = cert_tiers.replay

    def no_fallback(policy: Any, events: Any, start: int) -> Any:
        return real(dataclasses.replace(policy, fallback=None), events, start)

    monkeypatch.setattr(cert_tiers, "replay", no_fallback)
    text = "".join(encode_line(c) + "\n" for c in cert_tiers.generate(cert_tiers.SEED))
    assert text == VECTORS.read_text(encoding="utf-8")
    assert "heavy-without-magnetar" in _failures()


def test_a_policy_parser_without_lp217_spellings_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_mod, "VARIANT_ALIASES", {})
    assert _failures() == {"spelling-variant-strict"}
