"""A readable model of CertPolicy and the tier tracker, written from the docs.

The oracle of the ``cert_tiers`` suite: it reads a case's JSON ``input``
(``docs/formats/vectors-cert.md``) and returns the ``expected`` object, using
only the rules of ``docs/formats/certpolicy.md``.  It shares no code with
:mod:`zapstack.consensus.policy` or :mod:`zapstack.consensus.tiers`.

Invalid input raises :class:`OracleReject` with the rule it breaks: ``rule 1``
to ``rule 3`` (policy validation, certpolicy.md §"Validation at launch"),
``policy`` (unknown or missing keys, a bad TimeoutMs or MagnetarParams),
``events`` (an event earlier than the previous one or than the start, an
unknown leg or kind, a malformed event), ``input`` (the case input is not an
object with exactly ``policy``, ``start_ms``, ``events``); the first failing
check in certpolicy.md's order wins.  :func:`expected_or_error` maps the rule
to the suite's ``{"error": CODE}`` (:data:`ERROR_CODES`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR_CODES", "LEGS", "MODES", "OracleReject", "expected", "expected_or_error"]

LEGS = ("bls", "pulsar", "corona", "magnetar")
"""Leg labels in leg-id order (the order events at one time are sorted in)."""

# mode -> (variant, rank, legs required, floor ms), certpolicy.md §Modes
MODES: dict[str, tuple[str, int, frozenset[str], int]] = {
    "PQ-off": ("hybrid", 1, frozenset({"bls"}), 10),
    "PQ-fast": ("hybrid", 2, frozenset({"bls", "pulsar"}), 15),
    "PQ-strict": ("hybrid", 3, frozenset({"bls", "pulsar", "corona"}), 350),
    "PQ-heavy": ("hybrid", 4, frozenset({"bls", "pulsar", "corona", "magnetar"}), 400),
    "strict-PQ-fast": ("pure-pq", 2, frozenset({"pulsar"}), 15),
    "strict-PQ-strict": ("pure-pq", 3, frozenset({"pulsar", "corona"}), 350),
    "strict-PQ-heavy": ("pure-pq", 4, frozenset({"pulsar", "corona", "magnetar"}), 400),
}
KEYS = {"Mode", "Variant", "TimeoutMs", "Fallback", "MagnetarParams"}
MAGNETAR = {"slh-dsa-shake-192s", "slh-dsa-sha2-128f"}
VARIANTS = {"hybrid": "hybrid", "pure-pq": "pure-pq", "strict": "pure-pq"}
"""Variant spellings (lowercase) -> variant; ``strict`` is LP-217's name for pure-pq."""

ERROR_CODES = {
    "input": "BAD_INPUT",
    "policy": "BAD_POLICY",
    "rule 1": "RULE_1",
    "rule 2": "RULE_2",
    "rule 3": "RULE_3",
    "events": "BAD_EVENTS",
}
"""Rule broken -> the ``{"error": CODE}`` of vectors-cert.md §"Rejects"."""


class OracleReject(Exception):
    """The input breaks a documented rule; ``rule`` names it."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule


def _mode_name(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    for name in MODES:
        if name.lower() == value.lower():
            return name
    return None


def _policy(p: Any) -> tuple[str, str, int, str | None]:
    """(mode, variant, timeout, fallback); checks in certpolicy.md's order."""
    if not isinstance(p, dict) or not {"Mode", "Variant", "TimeoutMs"} <= set(p) <= KEYS:
        raise OracleReject("policy", "keys must be Mode, Variant, TimeoutMs[, Fallback, ...]")
    mode = _mode_name(p["Mode"])
    if mode is None:
        raise OracleReject("rule 1", "unknown mode")
    variant = VARIANTS.get(p["Variant"].lower()) if isinstance(p["Variant"], str) else None
    if variant is None:
        raise OracleReject("rule 1", "unknown variant")
    timeout = p["TimeoutMs"]
    if type(timeout) is not int or not 1 <= timeout <= 2**32 - 1:
        raise OracleReject("policy", "TimeoutMs must be an integer in 1..2^32-1")
    fallback_raw = p.get("Fallback")
    fallback = None
    if fallback_raw is not None and not (
        isinstance(fallback_raw, str) and fallback_raw.lower() == "none"
    ):
        fallback = _mode_name(fallback_raw)
        if fallback is None:
            raise OracleReject("rule 2", "unknown fallback")
    if fallback == mode:
        fallback = None  # LP-217: Fallback == Mode means no degradation
    magnetar = p.get("MagnetarParams", "slh-dsa-shake-192s")
    if not isinstance(magnetar, str) or magnetar.lower() not in MAGNETAR:
        raise OracleReject("policy", "unknown MagnetarParams")
    if MODES[mode][0] != variant:
        raise OracleReject("rule 1", "a mode of another variant")
    if fallback is not None and (
        MODES[fallback][0] != variant or MODES[fallback][1] >= MODES[mode][1]
    ):
        raise OracleReject("rule 2", "fallback must be a weaker mode of the same variant")
    if timeout < 2 * MODES[mode][3]:
        raise OracleReject("rule 3", "TimeoutMs below twice the mode's floor")
    return mode, variant, timeout, fallback


def _tier(variant: str, present: set[str]) -> str | None:
    """The highest-rank mode of ``variant`` whose legs are all present."""
    best = None
    for name, (v, rank, legs, _) in MODES.items():
        if v == variant and legs <= present and (best is None or rank > MODES[best][1]):
            best = name
    return best


def _track(
    variant: str, start: int, deadline: int, events: Any
) -> tuple[list[list[Any]], dict[str, str], dict[str, int]]:
    """Transitions, leg states and the time each mode was first met."""
    state = dict.fromkeys(LEGS, "pending")
    present: set[str] = set()
    transitions: list[list[Any]] = []
    met: dict[str, int] = {}
    last = start
    for ev in events:
        if not isinstance(ev, dict) or set(ev) != {"leg", "at_ms", "kind"}:
            raise OracleReject("events", f"bad event {ev!r}")
        leg, at, kind = ev["leg"], ev["at_ms"], ev["kind"]
        if leg not in LEGS or kind not in ("arrived", "failed") or type(at) is not int:
            raise OracleReject("events", f"bad event {ev!r}")
        if at < last:
            raise OracleReject("events", "events must not go back in time or precede the start")
        last = at
        if at > deadline or state[leg] != "pending":
            continue  # after the deadline, or the leg is already settled
        state[leg] = "present" if kind == "arrived" else "failed"
        if kind == "failed":
            continue
        before = _tier(variant, present)
        present.add(leg)
        after = _tier(variant, present)
        if after != before and after is not None:
            transitions.append([at, after])
        for name, (v, _, legs, _) in MODES.items():
            if v == variant and legs <= present:
                met.setdefault(name, at)
    return transitions, state, met


def _decide(mode: str, fallback: str | None, met: dict[str, int], deadline: int) -> dict[str, Any]:
    if mode in met:
        return {"action": "finalize", "at_ms": met[mode], "tier": mode}
    usable = fallback is not None and MODES[fallback][1] < MODES[mode][1]
    if usable and fallback in met:
        return {"action": "fallback-finalize", "at_ms": deadline, "tier": fallback}
    return {"action": "wait", "at_ms": deadline, "tier": None}


def expected_or_error(case_input: Any) -> dict[str, Any]:
    """Like :func:`expected`, but a rejected input gives ``{"error": CODE}``."""
    try:
        return expected(case_input)
    except OracleReject as rej:
        return {"error": ERROR_CODES[rej.rule]}


def expected(case_input: Any) -> dict[str, Any]:
    """The ``expected`` object for a ``cert_tiers`` input (or :class:`OracleReject`)."""
    if not isinstance(case_input, dict) or set(case_input) != {"policy", "start_ms", "events"}:
        raise OracleReject("input", "input keys must be policy, start_ms, events")
    mode, variant, timeout, fallback = _policy(case_input["policy"])
    start, events = case_input["start_ms"], case_input["events"]
    if type(start) is not int or start < 0 or not isinstance(events, list):
        raise OracleReject("events", "start_ms: a non-negative integer; events: a list")
    deadline = start + timeout
    transitions, legs, met = _track(variant, start, deadline, events)
    decisions = {
        name: _decide(name, fallback, met, deadline)
        for name, (v, *_) in MODES.items()
        if v == variant
    }
    return {
        "transitions": transitions,
        "legs": legs,
        "decisions": decisions,
        "final": decisions[mode],
    }
