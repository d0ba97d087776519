"""The cert_tiers oracle agrees with every checked-in vector and rejects bad input by rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from zapstack.conformance.oracles.cert_tiers import OracleReject, expected, expected_or_error

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "pipeline" / "cert_tiers.jsonl"
POLICY = {"Mode": "PQ-heavy", "Variant": "hybrid", "TimeoutMs": 800, "Fallback": "PQ-fast"}


def test_checked_in_vectors_match_the_independent_model() -> None:
    lines = VECTORS.read_text().splitlines()
    assert len(lines) >= 64
    for line in lines:
        case = json.loads(line)
        assert expected_or_error(case["input"]) == case["expected"], case["id"]


def test_the_doc_example() -> None:
    got = expected(
        {
            "policy": POLICY,
            "start_ms": 0,
            "events": [
                {"leg": "bls", "at_ms": 10, "kind": "arrived"},
                {"leg": "pulsar", "at_ms": 15, "kind": "arrived"},
                {"leg": "corona", "at_ms": 200, "kind": "failed"},
            ],
        }
    )
    assert got["transitions"] == [[10, "PQ-off"], [15, "PQ-fast"]]
    assert got["legs"] == {
        "bls": "present",
        "pulsar": "present",
        "corona": "failed",
        "magnetar": "pending",
    }
    assert got["final"] == {"action": "fallback-finalize", "at_ms": 800, "tier": "PQ-fast"}


@pytest.mark.parametrize(
    ("policy", "rule"),
    [
        ({**POLICY, "Mode": "nope"}, "rule 1"),
        ({**POLICY, "Variant": "pure-pq"}, "rule 1"),
        ({**POLICY, "Mode": "PQ-strict", "Fallback": "PQ-heavy"}, "rule 2"),
        ({**POLICY, "Fallback": "PQ-ultra"}, "rule 2"),
        ({**POLICY, "Fallback": "strict-PQ-heavy"}, "rule 2"),
        ({**POLICY, "Mode": "strict-PQ-heavy", "Variant": "hybrid"}, "rule 1"),
        ({**POLICY, "Variant": "classical"}, "rule 1"),
        ({**POLICY, "MagnetarParams": "slh-dsa-sha2-256f"}, "policy"),
        ({**POLICY, "TimeoutMs": True}, "policy"),
        ({**POLICY, "TimeoutMs": 800.0}, "policy"),
        ({**POLICY, "Fallback": "strict-PQ-fast"}, "rule 2"),
        ({**POLICY, "TimeoutMs": 799}, "rule 3"),
        ({**POLICY, "TimeoutMs": 0}, "policy"),
        ({**POLICY, "TimeoutMs": 2**32}, "policy"),
        ({**POLICY, "Extra": 1}, "policy"),
        ("PQ-heavy", "policy"),
    ],
)
def test_bad_policies_are_rejected_by_rule(policy: Any, rule: str) -> None:
    with pytest.raises(OracleReject) as info:
        expected({"policy": policy, "start_ms": 0, "events": []})
    assert info.value.rule == rule


def test_out_of_order_events_are_rejected() -> None:
    events = [
        {"leg": "pulsar", "at_ms": 15, "kind": "arrived"},
        {"leg": "bls", "at_ms": 10, "kind": "arrived"},
    ]
    with pytest.raises(OracleReject) as info:
        expected({"policy": POLICY, "start_ms": 0, "events": events})
    assert info.value.rule == "events"


def test_mode_names_are_case_insensitive() -> None:
    lower = {**POLICY, "Mode": "pq-heavy", "Fallback": "pq-FAST"}
    a = expected({"policy": lower, "start_ms": 0, "events": []})
    b = expected({"policy": POLICY, "start_ms": 0, "events": []})
    assert a == b


def test_lp217_spellings_are_equivalents() -> None:
    strict = {"Mode": "strict-PQ-heavy", "Variant": "strict", "TimeoutMs": 800}
    pure = {**strict, "Variant": "pure-pq"}
    assert expected({"policy": strict, "start_ms": 0, "events": []}) == expected(
        {"policy": pure, "start_ms": 0, "events": []}
    )
    same = expected({"policy": {**POLICY, "Fallback": "PQ-heavy"}, "start_ms": 0, "events": []})
    none = expected({"policy": {**POLICY, "Fallback": "none"}, "start_ms": 0, "events": []})
    assert same == none and same["final"]["action"] == "wait"


def test_the_first_failing_check_in_the_documented_order_wins() -> None:
    # an unknown Mode (rule 1) is reported before a bad TimeoutMs (policy) and
    # an unknown Fallback (rule 2); a bad TimeoutMs before an unknown Fallback
    both = {**POLICY, "Mode": "nope", "TimeoutMs": 0, "Fallback": "nope"}
    assert expected_or_error({"policy": both, "start_ms": 0, "events": []}) == {"error": "RULE_1"}
    later = {**POLICY, "TimeoutMs": 0, "Fallback": "nope"}
    got = expected_or_error({"policy": later, "start_ms": 0, "events": []})
    assert got == {"error": "BAD_POLICY"}
    assert expected_or_error({"policy": POLICY, "start_ms": 0}) == {"error": "BAD_INPUT"}
