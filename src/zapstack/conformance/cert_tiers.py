"""Conformance suite ``cert_tiers`` (LP-0202 cross-impl vector 2).

Given a CertPolicy and a round's leg events (per-leg arrival times; a failed
leg has a ``failed`` event or no event at all), every implementation must
produce the same tier transitions, leg states and per-mode decisions.  Line
schema: ``docs/formats/vectors-cert.md``.  Cases come from :func:`generate`
(hand-picked timelines plus seeded random ones); the expected output is what
the readable tracker (:func:`zapstack.consensus.tiers.replay`) yields.
"""

from __future__ import annotations

import random
from typing import Any

from zapstack.conformance.envelope import Case
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
from zapstack.errors import ConfigError

__all__ = ["NAME", "SEED", "generate", "run_case"]

NAME = "cert_tiers"
SEED = 0x0202_0002
RANDOM_CASES = 52


def _events_json(events: list[LegEvent]) -> list[dict[str, Any]]:
    return [{"leg": e.leg.label, "at_ms": e.at_ms, "kind": e.kind.value} for e in events]


def _sorted(events: list[LegEvent]) -> list[LegEvent]:
    return sorted(events, key=lambda e: (e.at_ms, int(e.leg)))


def _case(case_id: str, policy: CertPolicy, start_ms: int, events: list[LegEvent]) -> Case:
    validate_policy(policy)
    inp = {"policy": policy_to_dict(policy), "start_ms": start_ms, "events": _events_json(events)}
    provisional = Case(NAME, case_id, inp, {})
    return Case(NAME, case_id, inp, run_case(provisional))


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
    return cases


def _decision_json(d: Decision) -> dict[str, Any]:
    return {
        "action": d.action.value,
        "at_ms": d.at_ms,
        "tier": d.tier.value if d.tier is not None else None,
    }


def run_case(case: Case) -> dict[str, Any]:
    """Replay ``case.input`` through the tier tracker; return the actual output."""
    inp = case.input
    policy = parse_policy(inp["policy"])
    validate_policy(policy)
    start = inp["start_ms"]
    if not isinstance(start, int):
        raise ConfigError("start_ms must be an integer")
    events = [
        LegEvent(LegId.from_label(e["leg"]), int(e["at_ms"]), EventKind(e["kind"]))
        for e in inp["events"]
    ]
    out = replay(policy, events, start)
    return {
        "transitions": [[t.at_ms, t.tier.value] for t in out.transitions],
        "legs": {leg.label: state.value for leg, state in out.legs.items()},
        "decisions": {m.value: _decision_json(d) for m, d in out.decisions.items()},
        "final": _decision_json(out.final),
    }
