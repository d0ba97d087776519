"""Conformance suite ``cert_tiers`` (LP-0202 cross-impl vector 2).

Given a CertPolicy and a round's leg events (per-leg arrival times; a failed
leg has a ``failed`` event or no event at all), every implementation must
produce the same tier transitions, leg states and per-mode decisions.  Line
schema: ``docs/formats/vectors-cert.md``.  Cases come from :func:`generate`
(hand-picked timelines, seeded random ones, then LP-217 spellings and every
reject); the expected output comes from the independent model
:mod:`zapstack.conformance.oracles.cert_tiers`, never from the tracker under test.
"""

from __future__ import annotations

import random
from typing import Any

from zapstack.conformance.envelope import Case, CaseRejected
from zapstack.conformance.oracles import cert_tiers as oracle
from zapstack.consensus.digest import LegId
from zapstack.consensus.policy import (
    LEG_REFERENCE_MS,
    MODES,
    CertPolicy,
    Mode,
    floor_latency_ms,
    modes_of,
    parse_policy,
    policy_to_dict,
    validate_policy,
)
from zapstack.consensus.tiers import Decision, EventKind, LegEvent, replay
from zapstack.crypto.slhdsa import ParamSet
from zapstack.errors import ConfigError, LocalProtocolError

__all__ = ["NAME", "SEED", "generate", "run_case"]

NAME = "cert_tiers"
SEED = 0x0202_0002
RANDOM_CASES = 52


def _events_json(events: list[LegEvent]) -> list[dict[str, Any]]:
    return [{"leg": e.leg.label, "at_ms": e.at_ms, "kind": e.kind.value} for e in events]


def _sorted(events: list[LegEvent]) -> list[LegEvent]:
    return sorted(events, key=lambda e: (e.at_ms, int(e.leg)))


def _case(case_id: str, policy: CertPolicy, start_ms: int, events: list[LegEvent]) -> Case:
    inp = {"policy": policy_to_dict(policy), "start_ms": start_ms, "events": _events_json(events)}
    return _raw_case(case_id, inp)


def _raw_case(case_id: str, inp: dict[str, Any]) -> Case:
    """A case whose ``expected`` is the independent model's answer (never ours)."""
    return Case(NAME, case_id, inp, oracle.expected_or_error(inp))


def _reference(start: int, skip: frozenset[LegId] = frozenset()) -> list[LegEvent]:
    return _sorted(
        [
            LegEvent(leg, start + ms, EventKind.ARRIVED)
            for leg, ms in LEG_REFERENCE_MS.items()
            if leg not in skip
        ]
    )


def _policy(mode: Mode, timeout: int, fallback: Mode | None) -> CertPolicy:
    return CertPolicy(mode, MODES[mode].variant, timeout, fallback, ParamSet.SHAKE_192S)


def _random_case(rng: random.Random, k: int) -> Case:
    mode = rng.choice(list(MODES))
    weaker = [m for m in modes_of(MODES[mode].variant) if MODES[m].rank < MODES[mode].rank]
    fallback = rng.choice([None, *weaker])
    timeout = 2 * floor_latency_ms(mode) + rng.choice([0, 0, 7, 50, 200, 650])
    start = rng.choice([0, 0, 1_000, 123_456])
    events: list[LegEvent] = []
    for leg, ref in LEG_REFERENCE_MS.items():
        fate = rng.choices(["arrive", "fail", "silent", "late"], weights=[12, 2, 1, 1])[0]
        at = start + max(1, int(ref * rng.uniform(0.5, 1.8)))
        if fate == "arrive":
            events.append(LegEvent(leg, at, EventKind.ARRIVED))
            if rng.random() < 0.15:  # a duplicate or a post-arrival failure report: ignored
                kind = rng.choice([EventKind.ARRIVED, EventKind.FAILED])
                events.append(LegEvent(leg, at + rng.randint(0, 40), kind))
        elif fate == "fail":
            events.append(LegEvent(leg, at, EventKind.FAILED))
            if rng.random() < 0.3:  # a late aggregate after the failure: ignored
                events.append(LegEvent(leg, at + rng.randint(1, 80), EventKind.ARRIVED))
        elif fate == "late":
            events.append(LegEvent(leg, start + timeout + rng.randint(1, 300), EventKind.ARRIVED))
    return _case(f"random-{k:03d}", _policy(mode, timeout, fallback), start, _sorted(events))


def generate(seed: int) -> list[Case]:
    """Hand-picked timelines, then ``RANDOM_CASES`` seeded random rounds."""
    cases: list[Case] = []
    for mode in MODES:  # the LP-0202 reference timeline under every mode
        timeout = 2 * floor_latency_ms(mode)
        cases.append(
            _case(f"reference-{mode.value}", _policy(mode, timeout, None), 0, _reference(0))
        )
    heavy_fb = _policy(Mode.PQ_HEAVY, 800, Mode.PQ_FAST)
    for leg in LegId:  # each single leg failing under PQ-heavy with a PQ-fast fallback
        cases.append(
            _case(f"heavy-without-{leg.label}", heavy_fb, 0, _reference(0, frozenset({leg})))
        )
    at_deadline = [
        LegEvent(LegId.BLS, 10, EventKind.ARRIVED),
        LegEvent(LegId.PULSAR, 30, EventKind.ARRIVED),
    ]
    cases.append(
        _case("arrival-at-deadline-counts", _policy(Mode.PQ_FAST, 30, Mode.PQ_OFF), 0, at_deadline)
    )
    rng = random.Random(seed)
    cases.extend(_random_case(rng, k) for k in range(RANDOM_CASES))
    cases.extend(_raw_case(f"{name}", inp) for name, inp in edge_inputs().items())
    return cases


_HEAVY = {"Mode": "PQ-heavy", "Variant": "hybrid", "TimeoutMs": 800, "Fallback": "PQ-fast"}
_EVENTS = [
    {"leg": "bls", "at_ms": 10, "kind": "arrived"},
    {"leg": "pulsar", "at_ms": 15, "kind": "arrived"},
    {"leg": "corona", "at_ms": 350, "kind": "failed"},
]


def edge_inputs() -> dict[str, dict[str, Any]]:
    """Hand-picked inputs: LP-217 spellings, case-insensitive values, every reject."""
    policies: dict[str, Any] = {
        "spelling-variant-strict": {
            "Mode": "strict-PQ-heavy",
            "Variant": "strict",
            "TimeoutMs": 800,
            "Fallback": "strict-PQ-fast",
        },
        "spelling-fallback-equals-mode": {**_HEAVY, "Fallback": "PQ-heavy"},
        "spelling-any-case": {
            "Mode": "pq-HEAVY",
            "Variant": "HYBRID",
            "TimeoutMs": 800,
            "Fallback": "Pq-Fast",
            "MagnetarParams": "SLH-DSA-SHAKE-192S",
        },
        "spelling-fallback-none-upper": {**_HEAVY, "Fallback": "NONE"},
        "spelling-fallback-null": {**_HEAVY, "Fallback": None},
        "reject-unknown-mode": {**_HEAVY, "Mode": "PQ-ultra"},
        "reject-mode-not-a-string": {**_HEAVY, "Mode": 4},
        "reject-unknown-variant": {**_HEAVY, "Variant": "classical"},
        "reject-mode-of-other-variant": {**_HEAVY, "Mode": "strict-PQ-heavy"},
        "reject-timeout-0": {**_HEAVY, "TimeoutMs": 0},
        "reject-timeout-2pow32": {**_HEAVY, "TimeoutMs": 2**32},
        "reject-timeout-negative": {**_HEAVY, "TimeoutMs": -1},
        "reject-timeout-float": {**_HEAVY, "TimeoutMs": 800.0},
        "reject-timeout-bool": {**_HEAVY, "TimeoutMs": True},
        "reject-timeout-just-under-floor": {**_HEAVY, "TimeoutMs": 799},
        "reject-fallback-stronger": {**_HEAVY, "Mode": "PQ-strict", "Fallback": "PQ-heavy"},
        "reject-fallback-other-variant": {**_HEAVY, "Fallback": "strict-PQ-fast"},
        "reject-fallback-unknown": {**_HEAVY, "Fallback": "PQ-ultra"},
        "reject-fallback-not-a-string": {**_HEAVY, "Fallback": 2},
        "reject-unknown-key": {**_HEAVY, "Extra": 1},
        "reject-lowercase-key": {"mode": "PQ-heavy", "Variant": "hybrid", "TimeoutMs": 800},
        "reject-missing-timeout": {"Mode": "PQ-heavy", "Variant": "hybrid"},
        "reject-unknown-magnetar-params": {**_HEAVY, "MagnetarParams": "slh-dsa-sha2-256f"},
        "reject-policy-not-an-object": "PQ-heavy",
    }
    out = {name: {"policy": p, "start_ms": 0, "events": _EVENTS} for name, p in policies.items()}
    for mode in MODES:  # one below each mode's 2 x floor: rule 3
        p = {
            "Mode": mode.value,
            "Variant": MODES[mode].variant.value,
            "TimeoutMs": 2 * floor_latency_ms(mode) - 1,
        }
        out[f"reject-timeout-under-floor-{mode.value}"] = {"policy": p, "start_ms": 0, "events": []}
    swapped = [_EVENTS[1], _EVENTS[0], _EVENTS[2]]
    bad_events: dict[str, Any] = {
        "reject-events-out-of-order": swapped,
        "reject-event-unknown-leg": [{"leg": "aurora", "at_ms": 10, "kind": "arrived"}],
        "reject-event-unknown-kind": [{"leg": "bls", "at_ms": 10, "kind": "late"}],
        "reject-event-time-not-int": [{"leg": "bls", "at_ms": "10", "kind": "arrived"}],
        "reject-event-extra-key": [{"leg": "bls", "at_ms": 10, "kind": "arrived", "x": 1}],
        "reject-events-not-a-list": {"leg": "bls"},
    }
    for name, events in bad_events.items():
        out[name] = {"policy": _HEAVY, "start_ms": 0, "events": events}
    out["reject-event-before-start"] = {"policy": _HEAVY, "start_ms": 100, "events": _EVENTS}
    out["reject-start-negative"] = {"policy": _HEAVY, "start_ms": -1, "events": []}
    out["reject-input-missing-events"] = {"policy": _HEAVY, "start_ms": 0}
    return out


def _decision_json(d: Decision) -> dict[str, Any]:
    return {
        "action": d.action.value,
        "at_ms": d.at_ms,
        "tier": d.tier.value if d.tier is not None else None,
    }


def _policy_error(exc: ConfigError) -> CaseRejected:
    """``rule N: ...`` -> ``RULE_N``; any other policy error -> ``BAD_POLICY``."""
    text = str(exc)
    code = f"RULE_{text[5]}" if text[:5] == "rule " and text[5:7] in ("1:", "2:", "3:") else ""
    return CaseRejected(code or "BAD_POLICY", text)


def _events(inp: dict[str, Any]) -> tuple[int, list[LegEvent]]:
    """Decode ``start_ms`` and ``events`` (vectors-cert.md); ``BAD_EVENTS`` if malformed."""
    start, raw = inp["start_ms"], inp["events"]
    if type(start) is not int or start < 0 or not isinstance(raw, list):
        raise CaseRejected("BAD_EVENTS", "start_ms: a non-negative integer; events: a list")
    events: list[LegEvent] = []
    for e in raw:
        if not isinstance(e, dict) or set(e) != {"leg", "at_ms", "kind"}:
            raise CaseRejected("BAD_EVENTS", f"malformed event {e!r}")
        if type(e["at_ms"]) is not int or e["kind"] not in _KINDS or e["leg"] not in _LEGS:
            raise CaseRejected("BAD_EVENTS", f"malformed event {e!r}")
        events.append(LegEvent(_LEGS[e["leg"]], e["at_ms"], _KINDS[e["kind"]]))
    return start, events


_KINDS = {k.value: k for k in EventKind}
_LEGS = {leg.label: leg for leg in LegId}


def run_case(case: Case) -> dict[str, Any]:
    """Replay ``case.input`` through the tier tracker; return the actual output.

    Refusals (vectors-cert.md §"Rejects"): ``BAD_INPUT`` (the input's keys),
    ``RULE_1``..``RULE_3`` and ``BAD_POLICY`` (from :func:`parse_policy` and
    :func:`validate_policy`), ``BAD_EVENTS`` (a malformed event here, or the
    tracker refusing an event that goes back in time).
    """
    inp = case.input
    if set(inp) != {"policy", "start_ms", "events"}:
        raise CaseRejected("BAD_INPUT", "input keys must be policy, start_ms, events")
    try:
        policy = parse_policy(inp["policy"])
        validate_policy(policy)
    except ConfigError as exc:
        raise _policy_error(exc) from exc
    start, events = _events(inp)
    try:
        out = replay(policy, events, start)
    except LocalProtocolError as exc:
        raise CaseRejected("BAD_EVENTS", str(exc)) from exc
    return {
        "transitions": [[t.at_ms, t.tier.value] for t in out.transitions],
        "legs": {leg.label: state.value for leg, state in out.legs.items()},
        "decisions": {m.value: _decision_json(d) for m, d in out.decisions.items()},
        "final": _decision_json(out.final),
    }
