"""The cert tier tracker: pure, sans-IO temporal behaviour of one round's cert.

Theory of operation
-------------------
A round starts at ``start_ms``; its deadline is ``start_ms + TimeoutMs``.  Leg
events arrive in time order: ``ARRIVED`` (the leg's aggregate verified at
threshold) or ``FAILED`` (it cannot: too few shares, or an aggregate that does
not verify).  The tracker keeps the set of present legs and the *observed
tier* -- the strongest mode of its variant whose required legs are all
present (:func:`~zapstack.consensus.policy.observed_tier`).  Each event that
raises the tier yields one :class:`TierTransition`.  Legs are never withdrawn,
so the tier only rises.

Rules, in the order applied to an event:

1. an event earlier than the previous one (or than ``start_ms``) is the
   caller's bug: :class:`LocalProtocolError`;
2. an event after the deadline is ignored (the cert was published at the
   deadline with that field empty);
3. the first event of a leg settles it; later events of the same leg are
   ignored (a failed leg stays failed for the round, a present one present).

Decisions (:meth:`TierTracker.decide`) for a relying party at mode M with the
chain's Fallback F (used only when F is strictly weaker than M, same variant):

* ``finalize@t``            -- the tier first met M at t <= deadline;
* ``fallback-finalize@deadline`` -- M not met by the deadline, F met by then;
* ``wait@deadline``         -- neither: keep the previous height;
* ``pending``               -- asked before the deadline, M not yet met.

A leg that fails never blocks the round: only the deadline and the surviving
legs matter.  Same inputs, same outputs (cross-impl vector 2, ``cert_tiers``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from zapstack.consensus.digest import LegId
from zapstack.consensus.policy import (
    MODES,
    CertPolicy,
    Mode,
    Variant,
    meets,
    modes_of,
    observed_tier,
)
from zapstack.errors import LocalProtocolError

__all__ = [
    "Action",
    "Decision",
    "EventKind",
    "LegEvent",
    "LegState",
    "TierOutcome",
    "TierTracker",
    "TierTransition",
    "replay",
]


class EventKind(enum.Enum):
    """What happened to a leg."""

    ARRIVED = "arrived"
    FAILED = "failed"


class LegState(enum.Enum):
    """A leg's standing within the round."""

    PENDING = "pending"
    PRESENT = "present"
    FAILED = "failed"


class Action(enum.Enum):
    """A relying party's decision about the round's block."""

    FINALIZE = "finalize"
    FALLBACK_FINALIZE = "fallback-finalize"
    WAIT = "wait"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class LegEvent:
    """One input event."""

    leg: LegId
    at_ms: int
    """Absolute time in milliseconds (same clock as ``start_ms``)."""
    kind: EventKind


@dataclass(frozen=True, slots=True)
class TierTransition:
    """The observed tier rose to ``tier`` at ``at_ms``."""

    at_ms: int
    tier: Mode


@dataclass(frozen=True, slots=True)
class Decision:
    """A relying party's verdict."""

    mode: Mode
    """The relying party's mode."""
    action: Action
    at_ms: int | None
    """When it was taken (None while pending)."""
    tier: Mode | None
    """The tier finalized at (M, or the Fallback); None for wait/pending."""


class TierTracker:
    """Observed-tier state of one round for one variant.  Pure; no clock, no IO."""

    __slots__ = ("_last", "_legs", "_transitions", "deadline_ms", "start_ms", "variant")

    def __init__(self, variant: Variant, start_ms: int, timeout_ms: int) -> None:
        if timeout_ms <= 0:
            raise LocalProtocolError("timeout_ms must be positive")
        self.variant = variant
        self.start_ms = start_ms
        self.deadline_ms = start_ms + timeout_ms
        self._last = start_ms
        self._legs: dict[LegId, LegState] = dict.fromkeys(LegId, LegState.PENDING)
        self._transitions: list[TierTransition] = []

    @property
    def tier(self) -> Mode | None:
        """The current observed tier (None before any mode is met)."""
        return self._transitions[-1].tier if self._transitions else None

    @property
    def transitions(self) -> tuple[TierTransition, ...]:
        """Every transition so far, in order."""
        return tuple(self._transitions)

    def leg_state(self, leg: LegId) -> LegState:
        """Standing of ``leg``."""
        return self._legs[leg]

    def present(self) -> frozenset[LegId]:
        """Legs present so far."""
        return frozenset(leg for leg, s in self._legs.items() if s is LegState.PRESENT)

    def on_event(self, event: LegEvent) -> TierTransition | None:
        """Apply one event; return the transition it caused, if any."""
        if event.at_ms < self._last:
            raise LocalProtocolError(
                f"leg events out of order: {event.at_ms} ms after {self._last} ms"
            )
        self._last = event.at_ms
        if event.at_ms > self.deadline_ms or self._legs[event.leg] is not LegState.PENDING:
            return None
        if event.kind is EventKind.FAILED:
            self._legs[event.leg] = LegState.FAILED
            return None
        self._legs[event.leg] = LegState.PRESENT
        tier = observed_tier(self.variant, self.present())
        if tier is None or tier is self.tier:
            return None
        transition = TierTransition(event.at_ms, tier)
        self._transitions.append(transition)
        return transition

    def reached_at(self, mode: Mode) -> int | None:
        """When the observed tier first met ``mode`` (None: not yet)."""
        for tr in self._transitions:
            if meets(tr.tier, mode):
                return tr.at_ms
        return None

    def decide(self, mode: Mode, fallback: Mode | None, now_ms: int) -> Decision:
        """The decision of a relying party at ``mode`` as of ``now_ms``."""
        spec = MODES[mode]
        if spec.variant is not self.variant:
            raise LocalProtocolError(f"{mode.value} is not a {self.variant.value} mode")
        t = self.reached_at(mode)
        if t is not None and t <= now_ms:
            return Decision(mode, Action.FINALIZE, t, mode)
        if now_ms < self.deadline_ms:
            return Decision(mode, Action.PENDING, None, None)
        fb = fallback if fallback is not None and MODES[fallback].rank < spec.rank else None
        if fb is not None and MODES[fb].variant is self.variant and self.reached_at(fb) is not None:
            return Decision(mode, Action.FALLBACK_FINALIZE, self.deadline_ms, fb)
        return Decision(mode, Action.WAIT, self.deadline_ms, None)


@dataclass(frozen=True, slots=True)
class TierOutcome:
    """Everything a finished round's tier timeline yields."""

    transitions: tuple[TierTransition, ...]
    legs: dict[LegId, LegState]
    decisions: dict[Mode, Decision]
    """One per mode of the policy's variant, at the deadline."""
    final: Decision
    """The chain's own decision (its policy Mode)."""


def replay(policy: CertPolicy, events: Iterable[LegEvent], start_ms: int = 0) -> TierOutcome:
    """Run a whole round's events through a tracker and decide at the deadline."""
    tracker = TierTracker(policy.variant, start_ms, policy.timeout_ms)
    for event in events:
        tracker.on_event(event)
    end = tracker.deadline_ms
    decisions = {m: tracker.decide(m, policy.fallback, end) for m in modes_of(policy.variant)}
    legs = {leg: tracker.leg_state(leg) for leg in LegId}
    return TierOutcome(tracker.transitions, legs, decisions, decisions[policy.mode])
