"""CertPolicy: the modes table x every subset of legs, validation rules, genesis parsing."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from zapstack.consensus.digest import LegId
from zapstack.consensus.policy import (
    MODES,
    CertPolicy,
    Mode,
    Variant,
    floor_latency_ms,
    load_policy,
    meets,
    modes_of,
    observed_tier,
    parse_policy,
    policy_to_dict,
    validate_policy,
)
from zapstack.consensus.validators import ValidatorSet, generate_validators
from zapstack.crypto.slhdsa import ParamSet
from zapstack.errors import ConfigError

SUBSETS = [frozenset(c) for r in range(5) for c in itertools.combinations(list(LegId), r)]


def test_table_matches_cert_md() -> None:
    B, P, C, M = LegId.BLS, LegId.PULSAR, LegId.CORONA, LegId.MAGNETAR
    assert {m.value: s.legs for m, s in MODES.items()} == {
        "PQ-off": {B},
        "PQ-fast": {B, P},
        "PQ-strict": {B, P, C},
        "PQ-heavy": {B, P, C, M},
        "strict-PQ-fast": {P},
        "strict-PQ-strict": {P, C},
        "strict-PQ-heavy": {P, C, M},
    }
    assert all(LegId.BLS not in MODES[m].legs for m in modes_of(Variant.PURE_PQ))
    assert [floor_latency_ms(m) for m in modes_of(Variant.HYBRID)] == [10, 15, 350, 400]


@pytest.mark.parametrize("mode", list(MODES), ids=lambda m: m.value)
@pytest.mark.parametrize(
    "present", SUBSETS, ids=lambda s: "+".join(sorted(x.label for x in s)) or "none"
)
def test_every_mode_every_subset(mode: Mode, present: frozenset[LegId]) -> None:
    """Acceptance at ``mode`` == its required legs are a subset of the present ones."""
    tier = observed_tier(MODES[mode].variant, present)
    assert meets(tier, mode) == (MODES[mode].legs <= present)
    if tier is not None:  # the observed tier is the strongest satisfied mode
        assert MODES[tier].legs <= present
        stronger = [m for m in modes_of(MODES[mode].variant) if MODES[m].rank > MODES[tier].rank]
        assert not any(MODES[m].legs <= present for m in stronger)


def test_tier_is_monotone_in_present_legs() -> None:
    for variant in Variant:
        for a, b in itertools.product(SUBSETS, SUBSETS):
            if a <= b:
                ta, tb = observed_tier(variant, a), observed_tier(variant, b)
                assert ta is None or meets(tb, ta)


def test_meets_never_crosses_variants() -> None:
    assert not meets(Mode.PQ_HEAVY, Mode.STRICT_PQ_FAST)
    assert not meets(Mode.STRICT_PQ_HEAVY, Mode.PQ_OFF)
    assert not meets(None, Mode.PQ_OFF)


def _p(mode: str, variant: str, timeout: int, fallback: str | None = None) -> CertPolicy:
    return parse_policy(
        {"Mode": mode, "Variant": variant, "TimeoutMs": timeout, "Fallback": fallback}
    )


@pytest.mark.parametrize(
    ("policy", "rule"),
    [
        (lambda: _p("PQ-fast", "pure-pq", 100), "rule 1"),
        (lambda: _p("strict-PQ-strict", "hybrid", 1000), "rule 1"),
        (lambda: _p("PQ-strict", "hybrid", 1000, "PQ-heavy"), "rule 2"),
        (lambda: _p("PQ-strict", "hybrid", 1000, "PQ-ultra"), "rule 2"),
        (lambda: _p("PQ-strict", "hybrid", 1000, 3), "rule 2"),  # type: ignore[arg-type]
        (lambda: _p("PQ-strict", "hybrid", 1000, "strict-PQ-fast"), "rule 2"),
        (lambda: _p("PQ-strict", "hybrid", 699), "rule 3"),
        (lambda: _p("PQ-off", "hybrid", 19), "rule 3"),
        (lambda: _p("strict-PQ-heavy", "pure-pq", 799), "rule 3"),
    ],
)
def test_validation_rules(policy: Any, rule: str) -> None:
    with pytest.raises(ConfigError, match=rule):
        validate_policy(policy())


def test_valid_policies_pass() -> None:
    for mode in MODES:
        fb = [m for m in modes_of(MODES[mode].variant) if MODES[m].rank < MODES[mode].rank]
        for fallback in [None, *fb]:
            validate_policy(
                CertPolicy(mode, MODES[mode].variant, 2 * floor_latency_ms(mode), fallback)
            )


@pytest.mark.parametrize(
    ("block", "msg"),
    [
        ({"Mode": "PQ-warp", "Variant": "hybrid", "TimeoutMs": 900}, "unknown Mode"),
        ({"Mode": "PQ-fast", "Variant": "quantum", "TimeoutMs": 900}, "unknown Variant"),
        ({"Mode": "PQ-fast", "Variant": "hybrid"}, "missing field 'TimeoutMs'"),
        ({"Mode": "PQ-fast", "Variant": "hybrid", "TimeoutMs": "900"}, "TimeoutMs"),
        ({"Mode": "PQ-fast", "Variant": "hybrid", "TimeoutMs": True}, "TimeoutMs"),
        ({"Mode": "PQ-fast", "Variant": "hybrid", "TimeoutMs": 900, "Extra": 1}, "unknown field"),
        ({"Mode": 3, "Variant": "hybrid", "TimeoutMs": 900}, "must be a string"),
        (
            {"Mode": "PQ-fast", "Variant": "hybrid", "TimeoutMs": 9, "MagnetarParams": "x"},
            "SLH-DSA",
        ),
    ],
)
def test_parse_errors(block: dict[str, Any], msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        parse_policy(block)


def test_roundtrip_and_genesis(vset: ValidatorSet) -> None:
    block = {
        "Mode": "PQ-fast",
        "Variant": "hybrid",
        "TimeoutMs": 100,
        "Fallback": "PQ-off",
        "MagnetarParams": "slh-dsa-sha2-128f",
    }
    policy = load_policy({"quasar": {"cert_policy": block}}, vset)
    assert policy == CertPolicy(Mode.PQ_FAST, Variant.HYBRID, 100, Mode.PQ_OFF, ParamSet.SHA2_128F)
    assert policy_to_dict(policy) == block
    assert parse_policy({**block, "Fallback": "none"}).fallback is None
    with pytest.raises(ConfigError, match=r"no quasar\.cert_policy"):
        load_policy({"quasar": {}})
    with pytest.raises(ConfigError, match=r"no quasar\.cert_policy"):
        load_policy({})


def test_rule4_key_material(vset: ValidatorSet) -> None:
    no_magnetar, _ = generate_validators(
        4, b"rule4", corona=False, legs_keyed=frozenset({"bls", "pulsar"})
    )
    heavy = CertPolicy(Mode.PQ_HEAVY, Variant.HYBRID, 800, None, ParamSet.SHA2_128F)
    with pytest.raises(ConfigError, match=r"rule 4: .*Corona"):
        validate_policy(heavy, no_magnetar)
    fast = CertPolicy(Mode.STRICT_PQ_FAST, Variant.PURE_PQ, 30, None)
    validate_policy(fast, no_magnetar)
    no_pulsar, _ = generate_validators(4, b"rule4", corona=False, legs_keyed=frozenset({"bls"}))
    with pytest.raises(ConfigError, match="rule 4: validator 0 has no pulsar key"):
        validate_policy(fast, no_pulsar)
    if vset.corona_pk:
        with pytest.raises(ConfigError, match="rule 4: Magnetar keys are slh-dsa-sha2-128f"):
            validate_policy(CertPolicy(Mode.PQ_HEAVY, Variant.HYBRID, 800, None), vset)
        validate_policy(heavy, vset)


def test_lp217_spellings_are_equivalents() -> None:
    """LP-217 spells pure-pq ``strict``; ``Fallback == Mode`` means no degradation."""
    assert _p("strict-PQ-heavy", "strict", 800) == _p("strict-PQ-heavy", "pure-pq", 800)
    assert _p("PQ-heavy", "hybrid", 800, "PQ-heavy").fallback is None
    assert _p("pq-HEAVY", "Hybrid", 800, "pq-heavy").fallback is None


def test_every_value_is_case_insensitive() -> None:
    want = _p("PQ-heavy", "hybrid", 800, "PQ-fast")
    got = parse_policy(
        {
            "Mode": "pq-HEAVY",
            "Variant": "HYBRID",
            "TimeoutMs": 800,
            "Fallback": "Pq-Fast",
            "MagnetarParams": "SLH-DSA-SHAKE-192S",
        }
    )
    assert got == want
    assert _p("PQ-heavy", "hybrid", 800, "NONE").fallback is None
    with pytest.raises(ConfigError):  # key names are not
        parse_policy({"mode": "PQ-heavy", "Variant": "hybrid", "TimeoutMs": 800})
