"""The cert_tiers oracle agrees with every checked-in vector and rejects bad input by rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.conformance import Case
from zapstack.conformance.oracles.cert_tiers import (
    LEGS,
    MODES,
    OracleReject,
    expected,
    expected_or_error,
)
from zapstack.conformance.runner import actual_output

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


_MODE_VALUES = ["PQ-off", "pq-FAST", "PQ-strict", "PQ-heavy", "strict-PQ-fast",
                "STRICT-pq-strict", "strict-PQ-heavy", "PQ-ultra", 3, None]  # fmt: skip
_POLICY = st.fixed_dictionaries(
    {
        "Mode": st.sampled_from(_MODE_VALUES),
        "Variant": st.sampled_from(["hybrid", "pure-pq", "Strict", "HYBRID", "classical", 1]),
        "TimeoutMs": st.one_of(
            st.integers(min_value=-1, max_value=1000),
            st.sampled_from([2**32 - 1, 2**32, True, 800.0, "800"]),
        ),
    },
    optional={
        "Fallback": st.sampled_from([*_MODE_VALUES, "none", "NONE"]),
        "MagnetarParams": st.sampled_from(["slh-dsa-shake-192s", "SLH-DSA-SHA2-128F", "x", 5]),
        "Extra": st.just(1),
    },
)
_EVENT = st.fixed_dictionaries(
    {
        "leg": st.sampled_from(["bls", "pulsar", "corona", "magnetar", "aurora"]),
        "at_ms": st.one_of(st.integers(min_value=-5, max_value=1200), st.just("10")),
        "kind": st.sampled_from(["arrived", "failed", "arrived", "late"]),
    }
)


@settings(max_examples=400, deadline=None)
@given(
    _POLICY, st.integers(min_value=-1, max_value=300), st.lists(_EVENT, max_size=8), st.booleans()
)
def test_the_implementation_agrees_with_the_model_on_any_input(
    policy: dict[str, Any], start: int, events: list[dict[str, Any]], ordered: bool
) -> None:
    """Valid or not: the same output or the same reject code (RULE_n, BAD_POLICY, BAD_EVENTS)."""
    if ordered:
        events = sorted(events, key=lambda e: e["at_ms"] if isinstance(e["at_ms"], int) else 0)
    inp = {"policy": policy, "start_ms": start, "events": events}
    assert actual_output(Case("cert_tiers", "h", inp, {})) == expected_or_error(inp)


@st.composite
def _mostly_valid(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(sorted(MODES)))
    variant, _, _, floor = MODES[mode]
    spelled = {"hybrid": ["hybrid", "Hybrid"], "pure-pq": ["pure-pq", "strict", "STRICT"]}
    fallback = draw(
        st.sampled_from([None, "none", mode, *[m for m, row in MODES.items() if row[0] == variant]])
    )
    policy: dict[str, Any] = {
        "Mode": draw(st.sampled_from([mode, mode.lower(), mode.upper()])),
        "Variant": draw(st.sampled_from(spelled[variant])),
        "TimeoutMs": 2 * floor + draw(st.integers(min_value=-2, max_value=400)),
        "Fallback": fallback,
    }
    start = draw(st.integers(min_value=0, max_value=50))
    events = [
        {"leg": draw(st.sampled_from(LEGS)), "at_ms": start + draw(st.integers(0, 1300)),
         "kind": draw(st.sampled_from(["arrived", "arrived", "arrived", "failed"]))}
        for _ in range(draw(st.integers(min_value=0, max_value=7)))
    ]  # fmt: skip
    if draw(st.integers(min_value=0, max_value=9)):  # mostly in order
        events.sort(key=lambda e: e["at_ms"])
    return {"policy": policy, "start_ms": start, "events": events}


@settings(max_examples=300, deadline=None)
@given(_mostly_valid())
def test_the_implementation_agrees_with_the_model_on_plausible_rounds(inp: dict[str, Any]) -> None:
    assert actual_output(Case("cert_tiers", "h", inp, {})) == expected_or_error(inp)
