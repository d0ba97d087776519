"""CertPolicy: the LP-217 modes table, validation at launch, genesis parsing.

``docs/formats/certpolicy.md`` is the normative text.  The tables here are the
only place modes, their legs and their ranks are defined; everything else
(tier tracker, cert acceptance, tests, vectors) iterates them.

Modes (rank orders modes of one variant; requirement sets are nested, so the
observed tier only rises as legs arrive)::

    hybrid   PQ-off(1)  BLS
             PQ-fast(2) BLS+Pulsar   PQ-strict(3) +Corona   PQ-heavy(4) +Magnetar
    pure-pq  strict-PQ-fast(2) Pulsar   strict-PQ-strict(3) +Corona
             strict-PQ-heavy(4) +Magnetar

Validation rules (each failure is a :class:`ConfigError` naming the rule):

1. Mode and Variant are known and consistent (the Mode's row has that Variant).
2. Fallback is none, or a strictly weaker mode of the same Variant.
3. ``TimeoutMs >= 2 x floor(Mode)``, floor = reference time of the Mode's
   slowest leg (BLS 10, Pulsar 15, Corona 350, Magnetar 400 ms).
4. Every validator holds key material for every leg the Mode requires (and
   Magnetar keys are of the policy's SLH-DSA parameter set).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zapstack.consensus.digest import LegId
from zapstack.consensus.validators import ValidatorSet
from zapstack.crypto.slhdsa import ParamSet
from zapstack.errors import ConfigError

__all__ = [
    "LEG_REFERENCE_MS",
    "MODES",
    "VARIANT_ALIASES",
    "CertPolicy",
    "Mode",
    "ModeSpec",
    "Variant",
    "accepted_tier",
    "floor_latency_ms",
    "load_policy",
    "meets",
    "modes_of",
    "observed_tier",
    "parse_policy",
    "policy_to_dict",
    "validate_policy",
]


class Variant(enum.Enum):
    """Whether classical BLS counts toward acceptance."""

    HYBRID = "hybrid"
    PURE_PQ = "pure-pq"


class Mode(enum.Enum):
    """LP-217 cert modes; the value is the genesis spelling."""

    PQ_OFF = "PQ-off"
    PQ_FAST = "PQ-fast"
    PQ_STRICT = "PQ-strict"
    PQ_HEAVY = "PQ-heavy"
    STRICT_PQ_FAST = "strict-PQ-fast"
    STRICT_PQ_STRICT = "strict-PQ-strict"
    STRICT_PQ_HEAVY = "strict-PQ-heavy"


@dataclass(frozen=True, slots=True)
class ModeSpec:
    """One row of the modes table."""

    variant: Variant
    legs: frozenset[LegId]
    """Legs that must all be present."""
    rank: int
    """Strength within the variant (higher = stronger)."""
    codename: str
    """Historical LP-017 codename, or empty."""


_B, _P, _C, _M = LegId.BLS, LegId.PULSAR, LegId.CORONA, LegId.MAGNETAR

MODES: dict[Mode, ModeSpec] = {
    Mode.PQ_OFF: ModeSpec(Variant.HYBRID, frozenset({_B}), 1, ""),
    Mode.PQ_FAST: ModeSpec(Variant.HYBRID, frozenset({_B, _P}), 2, "Pulsar"),
    Mode.PQ_STRICT: ModeSpec(Variant.HYBRID, frozenset({_B, _P, _C}), 3, "Aurora"),
    Mode.PQ_HEAVY: ModeSpec(Variant.HYBRID, frozenset({_B, _P, _C, _M}), 4, "Polaris"),
    Mode.STRICT_PQ_FAST: ModeSpec(Variant.PURE_PQ, frozenset({_P}), 2, ""),
    Mode.STRICT_PQ_STRICT: ModeSpec(Variant.PURE_PQ, frozenset({_P, _C}), 3, ""),
    Mode.STRICT_PQ_HEAVY: ModeSpec(Variant.PURE_PQ, frozenset({_P, _C, _M}), 4, ""),
}
"""Mode -> (variant, required legs, rank).  The single source of truth."""

LEG_REFERENCE_MS: dict[LegId, int] = {_B: 10, _P: 15, _C: 350, _M: 400}
"""LP-0202 reference timeline (40 validators): when each leg's aggregate completes."""


def modes_of(variant: Variant) -> list[Mode]:
    """The variant's modes, weakest first."""
    return sorted(
        (m for m, s in MODES.items() if s.variant is variant), key=lambda m: MODES[m].rank
    )


def floor_latency_ms(mode: Mode) -> int:
    """Reference-timeline time of the mode's slowest leg."""
    return max(LEG_REFERENCE_MS[leg] for leg in MODES[mode].legs)


def observed_tier(variant: Variant, present: Iterable[LegId]) -> Mode | None:
    """The strongest mode of ``variant`` whose legs are all in ``present`` (None: none)."""
    have = frozenset(present)
    best: Mode | None = None
    for mode in modes_of(variant):
        if MODES[mode].legs <= have:
            best = mode
    return best


def meets(tier: Mode | None, mode: Mode) -> bool:
    """True iff an observed ``tier`` satisfies a relying party at ``mode``."""
    if tier is None:
        return False
    t, m = MODES[tier], MODES[mode]
    return t.variant is m.variant and t.rank >= m.rank


def accepted_tier(policy: CertPolicy, present: Iterable[LegId]) -> Mode | None:
    """The tier at which a cert with ``present`` legs is final under ``policy``.

    ``policy.mode`` when met; else ``policy.fallback`` when met (a cert that was
    published at the deadline at the fallback tier); else None (not final).
    """
    tier = observed_tier(policy.variant, present)
    if meets(tier, policy.mode):
        return policy.mode
    if policy.fallback is not None and meets(tier, policy.fallback):
        return policy.fallback
    return None


@dataclass(frozen=True, slots=True)
class CertPolicy:
    """The chain's one CertPolicy record (genesis ``quasar.cert_policy``)."""

    mode: Mode
    """The tier a block needs to be final."""
    variant: Variant
    """hybrid or pure-pq; must be the Mode's variant."""
    timeout_ms: int
    """Round deadline, milliseconds after round start."""
    fallback: Mode | None
    """Strictly weaker mode of the same variant accepted at the deadline, or None."""
    magnetar_params: ParamSet = ParamSet.SHAKE_192S
    """SLH-DSA parameter set of the Magnetar leg (conformance profile: SHAKE-192s)."""


def validate_policy(policy: CertPolicy, vset: ValidatorSet | None = None) -> None:
    """Apply rules 1-4 (rule 4 only when ``vset`` is given); raise :class:`ConfigError`."""
    spec = MODES.get(policy.mode)
    if spec is None or not isinstance(policy.variant, Variant):
        raise ConfigError(f"rule 1: unknown Mode {policy.mode!r} or Variant {policy.variant!r}")
    if spec.variant is not policy.variant:
        raise ConfigError(
            f"rule 1: Mode {policy.mode.value} belongs to Variant {spec.variant.value}, "
            f"not {policy.variant.value}"
        )
    if policy.fallback is not None:
        fb = MODES[policy.fallback]
        if fb.variant is not policy.variant:
            raise ConfigError(
                f"rule 2: Fallback {policy.fallback.value} is not a {policy.variant.value} mode"
            )
        if fb.rank >= spec.rank:
            raise ConfigError(
                f"rule 2: Fallback {policy.fallback.value} is not strictly weaker than "
                f"Mode {policy.mode.value}"
            )
    floor = floor_latency_ms(policy.mode)
    if policy.timeout_ms < 2 * floor:
        raise ConfigError(
            f"rule 3: TimeoutMs {policy.timeout_ms} < 2 x {floor} ms, the expected floor "
            f"latency of {policy.mode.value}"
        )
    if vset is not None:
        _check_keys(policy, vset)


_KEY_OF = {
    LegId.BLS: lambda v: v.bls_pk,
    LegId.PULSAR: lambda v: v.mldsa_pk,
    LegId.MAGNETAR: lambda v: v.slhdsa_pk,
}


def _check_keys(policy: CertPolicy, vset: ValidatorSet) -> None:
    for leg in sorted(MODES[policy.mode].legs):
        if leg is LegId.CORONA:
            if not vset.corona_pk:
                raise ConfigError(
                    f"rule 4: Mode {policy.mode.value} needs Corona but the validator set "
                    "has no Ringtail group key for this epoch"
                )
            continue
        for v in vset.validators:
            if not _KEY_OF[leg](v):
                raise ConfigError(
                    f"rule 4: validator {v.index} has no {leg.label} key, "
                    f"required by Mode {policy.mode.value}"
                )
        if leg is LegId.MAGNETAR and vset.slh_params is not policy.magnetar_params:
            raise ConfigError(
                f"rule 4: Magnetar keys are {vset.slh_params.label}, the policy requires "
                f"{policy.magnetar_params.label}"
            )


_FIELDS = {"Mode", "Variant", "TimeoutMs", "Fallback", "MagnetarParams"}

VARIANT_ALIASES: dict[str, Variant] = {"strict": Variant.PURE_PQ}
"""LP-217's spellings (luxfi/consensus ``config/cert_policy.go``) accepted as equivalents."""


def _enum(cls: type[Mode] | type[Variant], raw: object, name: str, rule: int) -> Any:
    """The member whose value equals ``raw`` ignoring case (or a documented alias)."""
    if not isinstance(raw, str):
        raise ConfigError(f"rule {rule}: cert_policy.{name} must be a string, got {raw!r}")
    for member in cls:
        if member.value.lower() == raw.lower():
            return member
    if cls is Variant and raw.lower() in VARIANT_ALIASES:
        return VARIANT_ALIASES[raw.lower()]
    known = ", ".join(m.value for m in cls)
    raise ConfigError(f"rule {rule}: unknown {name} {raw!r}; known: {known}")


def parse_policy(block: Mapping[str, Any]) -> CertPolicy:
    """Parse a ``cert_policy`` mapping (field names as in the format doc); no validation.

    Checks run in the documented order (certpolicy.md §"Validation at launch"):
    the keys, then Mode (rule 1), Variant (rule 1), TimeoutMs, Fallback (rule 2),
    MagnetarParams.  Values are case-insensitive; ``Variant`` ``strict`` is
    ``pure-pq`` and a ``Fallback`` equal to ``Mode`` is ``none`` (LP-217).
    """
    if not isinstance(block, Mapping):
        raise ConfigError("quasar.cert_policy must be an object")
    unknown = set(block) - _FIELDS
    if unknown:
        raise ConfigError(f"cert_policy: unknown field(s) {sorted(unknown)}")
    for required in ("Mode", "Variant", "TimeoutMs"):
        if required not in block:
            raise ConfigError(f"cert_policy: missing field {required!r}")
    mode = _enum(Mode, block["Mode"], "Mode", 1)
    variant = _enum(Variant, block["Variant"], "Variant", 1)
    timeout = block["TimeoutMs"]
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 < timeout < 1 << 32:
        raise ConfigError(f"cert_policy.TimeoutMs must be an integer in 1..2^32-1, got {timeout!r}")
    raw_fb = block.get("Fallback")
    fallback = None
    if raw_fb is not None and not (isinstance(raw_fb, str) and raw_fb.lower() == "none"):
        fallback = _enum(Mode, raw_fb, "Fallback", 2)
    if fallback is mode:  # LP-217: Fallback == Mode means no degradation
        fallback = None
    raw_params = block.get("MagnetarParams", ParamSet.SHAKE_192S.label)
    if not isinstance(raw_params, str):
        raise ConfigError("cert_policy.MagnetarParams must be a string")
    return CertPolicy(mode, variant, timeout, fallback, ParamSet.from_label(raw_params))


def policy_to_dict(policy: CertPolicy) -> dict[str, Any]:
    """The genesis spelling of ``policy`` (inverse of :func:`parse_policy`)."""
    return {
        "Mode": policy.mode.value,
        "Variant": policy.variant.value,
        "TimeoutMs": policy.timeout_ms,
        "Fallback": policy.fallback.value if policy.fallback else "none",
        "MagnetarParams": policy.magnetar_params.label,
    }


def load_policy(genesis: Mapping[str, Any], vset: ValidatorSet | None = None) -> CertPolicy:
    """Read ``genesis["quasar"]["cert_policy"]`` and validate it (rules 1-4)."""
    quasar = genesis.get("quasar") if isinstance(genesis, Mapping) else None
    if not isinstance(quasar, Mapping) or "cert_policy" not in quasar:
        raise ConfigError("genesis has no quasar.cert_policy block")
    policy = parse_policy(quasar["cert_policy"])
    validate_policy(policy, vset)
    return policy
