"""One height's consensus round state machine (sans-IO).

Theory of operation
-------------------
``ConsensusRound`` holds one height.  Its ``round`` counter starts at 0.

* ``propose(block, now)`` -- the proposer's block hash opens round r: the
  transcript context is fixed (chain, height, r, sha256(block), vset root), a
  tier tracker starts with deadline ``now + TimeoutMs``.  One proposal per
  round; a second, different block in the same round is proposer
  equivocation (:class:`InvalidBlock`).
* Votes arrive as events, per leg, in any order: ``on_share`` (BLS, Pulsar,
  Magnetar: one signature each, verified on arrival) and the two Corona
  rounds (``on_corona_commit``, then -- once t commitments are in and the
  signer set is announced with :class:`CoronaSignersChosen` --
  ``on_corona_response``).  Each leg aggregates independently the moment it
  has threshold; nothing waits for another leg, so the round's wall-clock is
  max(legs) + fan-out.
* Every leg result feeds the tier tracker; as soon as the observed tier meets
  the policy Mode the block is :class:`Finalized` (later legs still upgrade
  the cert until the deadline).  ``on_timer(now)`` at the deadline fails the
  legs still pending (the cert keeps their fields empty) and either
  fallback-finalizes or reports :class:`RoundTimedOut` (keep the previous
  height; the driver calls ``abandon``).
* ``abandon()`` is the unwind primitive: it drops every in-flight vote and leg
  aggregate (O(pending votes)), advances ``round`` and waits for the next
  proposal.  Idempotent (a second call, or a call with nothing in flight, is a
  no-op), never raises; a finalized height is never unwound.  Votes for an
  abandoned round are ignored.
* Once a block is final no proposal, vote or cert for another block at this
  height is accepted (:class:`InvalidBlock`).

Time is injected (``now_ms``); there is no IO and no clock.

Concurrency
-----------
Single-threaded, like h11's and aioquic's connections: a ``ConsensusRound``
holds no lock, and the caller serialises every call on one round (no two
methods, ``abandon`` and the observers ``cert`` / ``pending_votes``
included, may run at once).  Calls may come from different threads one
after another (the node runs the signature checks on a worker pool and holds
a per-round ``asyncio.Lock`` around each call: ``node/consensus.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from zapstack.consensus.cert import QuasarCert
from zapstack.consensus.digest import CertContext, LegId, block_id
from zapstack.consensus.legs import bls as bls_leg
from zapstack.consensus.legs import magnetar as magnetar_leg
from zapstack.consensus.legs import pulsar as pulsar_leg
from zapstack.consensus.policy import CertPolicy, Mode, accepted_tier
from zapstack.consensus.tiers import Action, EventKind, LegEvent, TierTracker
from zapstack.consensus.validators import ValidatorSet
from zapstack.errors import InvalidBlock, InvalidCert, LocalProtocolError

__all__ = [
    "ConsensusRound",
    "CoronaSignersChosen",
    "Finalized",
    "LegAggregated",
    "LegFailed",
    "Phase",
    "RoundAbandoned",
    "RoundEvent",
    "RoundTimedOut",
    "ShareRejected",
    "TierRaised",
]


class Phase(enum.Enum):
    """Where the round stands."""

    WAITING = "waiting"
    """No proposal yet in the current round."""
    COLLECTING = "collecting"
    """Proposal known; legs aggregating."""
    FINALIZED = "finalized"
    """The block is final (legs may still upgrade the cert until the deadline)."""
    ABANDONED = "abandoned"
    """The previous round was abandoned; waiting for the next proposal."""


@dataclass(frozen=True, slots=True)
class LegAggregated:
    """A leg reached threshold and its field verified."""

    leg: LegId
    at_ms: int
    field_len: int


@dataclass(frozen=True, slots=True)
class LegFailed:
    """A leg cannot complete this round (its cert field stays empty)."""

    leg: LegId
    at_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class ShareRejected:
    """One vote did not verify (blame the sender; the round goes on)."""

    leg: LegId
    validator: int
    reason: str


@dataclass(frozen=True, slots=True)
class TierRaised:
    """The cert's observed tier rose."""

    at_ms: int
    tier: Mode


@dataclass(frozen=True, slots=True)
class CoronaSignersChosen:
    """Broadcast to the chosen signers: answer Corona round 2 with these commitments."""

    signers: tuple[int, ...]
    commitments: Mapping[int, bytes]


@dataclass(frozen=True, slots=True)
class Finalized:
    """The block is final under the policy."""

    height: int
    round: int
    block_id: bytes
    tier: Mode
    at_ms: int
    fallback: bool
    """True when finalized at the deadline at the Fallback tier."""


@dataclass(frozen=True, slots=True)
class RoundTimedOut:
    """Deadline passed without the Mode or the Fallback: keep the previous height."""

    height: int
    round: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class RoundAbandoned:
    """``abandon()`` dropped a round."""

    height: int
    round: int
    """The round that was dropped (the counter is now round + 1)."""
    dropped_votes: int


RoundEvent = (
    LegAggregated
    | LegFailed
    | ShareRejected
    | TierRaised
    | CoronaSignersChosen
    | Finalized
    | RoundTimedOut
    | RoundAbandoned
)

_ShareLeg = tuple[
    Callable[[ValidatorSet, CertContext, int, bytes], bool],
    Callable[[ValidatorSet, CertContext, Mapping[int, bytes]], bytes],
]
_SHARE_LEGS: dict[LegId, _ShareLeg] = {
    LegId.BLS: (bls_leg.verify_share, bls_leg.aggregate),
    LegId.PULSAR: (pulsar_leg.verify_share, pulsar_leg.aggregate),
    LegId.MAGNETAR: (magnetar_leg.verify_share, magnetar_leg.aggregate),
}
"""One-round legs: leg -> (verify one share, aggregate verified shares)."""


@dataclass(slots=True)
class _InFlight:
    """Everything abandon() drops."""

    ctx: CertContext
    tracker: TierTracker
    shares: dict[LegId, dict[int, bytes]] = field(default_factory=dict)
    fields: dict[LegId, bytes] = field(default_factory=dict)
    corona_commits: dict[int, bytes] = field(default_factory=dict)
    corona_signers: tuple[int, ...] = ()
    corona_responses: dict[int, bytes] = field(default_factory=dict)
    timed_out: bool = False

    def votes(self) -> int:
        return (
            sum(len(s) for s in self.shares.values())
            + len(self.corona_commits)
            + len(self.corona_responses)
        )


class ConsensusRound:
    """Consensus state of one height; see the module docstring."""

    def __init__(self, vset: ValidatorSet, policy: CertPolicy, chain_id: int, height: int) -> None:
        self.vset = vset
        self.policy = policy
        self.chain_id = chain_id
        self.height = height
        self.round = 0
        self.phase = Phase.WAITING
        self.final: Finalized | None = None
        self._live: _InFlight | None = None

    # -- observation ---------------------------------------------------------------

    @property
    def context(self) -> CertContext | None:
        """The live round's transcript context."""
        return self._live.ctx if self._live else None

    @property
    def pending_votes(self) -> int:
        """Votes held for the live round (what abandon() drops)."""
        return self._live.votes() if self._live else 0

    def cert(self) -> QuasarCert | None:
        """The live round's cert as it stands (absent legs empty)."""
        if self._live is None:
            return None
        cert = QuasarCert.empty(self._live.ctx)
        for leg, value in self._live.fields.items():
            cert = cert.with_field(leg, value)
        return cert

    # -- inputs ----------------------------------------------------------------------

    def propose(self, block_bytes: bytes, now_ms: int) -> list[RoundEvent]:
        """Open the current round with the proposer's block."""
        bid = block_id(block_bytes)
        if self.phase is Phase.FINALIZED:
            if self.final is not None and self.final.block_id == bid:
                return []
            raise InvalidBlock(f"height {self.height} is final; a competing proposal is rejected")
        if self._live is not None:
            if self._live.ctx.block_id == bid:
                return []
            raise InvalidBlock(f"proposer equivocation: a second block in round {self.round}")
        ctx = CertContext(self.chain_id, self.height, self.round, bid, self.vset.root)
        tracker = TierTracker(self.policy.variant, now_ms, self.policy.timeout_ms)
        self._live = _InFlight(ctx, tracker)
        self.phase = Phase.COLLECTING
        return []

    def _accepting(self, bid_round: int | None) -> _InFlight | None:
        live = self._live
        if live is None or live.timed_out:
            return None
        if bid_round is not None and bid_round != self.round:
            return None
        return live

    def on_share(
        self, leg: LegId, validator: int, share: bytes, now_ms: int, round_: int | None = None
    ) -> list[RoundEvent]:
        """A one-round leg's vote (BLS, Pulsar or Magnetar)."""
        if leg not in _SHARE_LEGS:
            raise LocalProtocolError(f"{leg.label} votes go through the Corona round methods")
        live = self._accepting(round_)
        if live is None or leg in live.fields or live.tracker.leg_state(leg).value != "pending":
            return []
        got = live.shares.setdefault(leg, {})
        if validator in got:
            return []
        verify_share, aggregate = _SHARE_LEGS[leg]
        if not verify_share(self.vset, live.ctx, validator, share):
            return [ShareRejected(leg, validator, "signature does not verify")]
        got[validator] = share
        if self.vset.weight_of(got) < self.vset.threshold_weight:
            return []
        try:
            value = aggregate(self.vset, live.ctx, got)
        except InvalidCert as exc:
            return self._leg_done(live, leg, None, now_ms, str(exc))
        return self._leg_done(live, leg, value, now_ms, "")

    def on_corona_commit(
        self, validator: int, commitment: bytes, now_ms: int, round_: int | None = None
    ) -> list[RoundEvent]:
        """A Corona round-1 commitment; announces the signer set at t commitments."""
        from zapstack.consensus.legs import corona

        live = self._accepting(round_)
        if live is None or live.corona_signers or not 0 <= validator < self.vset.n:
            return []
        live.corona_commits.setdefault(validator, commitment)
        chosen = corona.choose_signers(self.vset, list(live.corona_commits))
        if chosen is None:
            return []
        live.corona_signers = tuple(chosen)
        commits = {i: live.corona_commits[i] for i in chosen}
        return [CoronaSignersChosen(live.corona_signers, commits)]

    def on_corona_response(
        self, validator: int, response: bytes, now_ms: int, round_: int | None = None
    ) -> list[RoundEvent]:
        """A chosen signer's Corona round-2 response; combines when all are in."""
        from zapstack.consensus.legs import corona

        live = self._accepting(round_)
        if live is None or validator not in live.corona_signers:
            return []
        if LegId.CORONA in live.fields or validator in live.corona_responses:
            return []
        live.corona_responses[validator] = response
        if len(live.corona_responses) < len(live.corona_signers):
            return []
        try:
            value = corona.aggregate(
                self.vset,
                live.ctx,
                live.corona_signers,
                live.corona_commits,
                live.corona_responses,
            )
        except InvalidCert as exc:
            return self._leg_done(live, LegId.CORONA, None, now_ms, str(exc))
        return self._leg_done(live, LegId.CORONA, value, now_ms, "")

    def on_timer(self, now_ms: int) -> list[RoundEvent]:
        """Deadline handling: fail pending legs, fallback-finalize or time out."""
        live = self._live
        if live is None or live.timed_out or now_ms < live.tracker.deadline_ms:
            return []
        live.timed_out = True
        deadline = live.tracker.deadline_ms
        out: list[RoundEvent] = []
        for leg in LegId:
            if live.tracker.leg_state(leg).value == "pending":
                live.tracker.on_event(LegEvent(leg, deadline, EventKind.FAILED))
                out.append(LegFailed(leg, deadline, "deadline passed below threshold"))
        if self.phase is Phase.FINALIZED:
            return out
        d = live.tracker.decide(self.policy.mode, self.policy.fallback, deadline)
        if d.action is Action.FALLBACK_FINALIZE and d.tier is not None:
            out.append(self._finalize(live, d.tier, deadline, fallback=True))
        else:
            out.append(RoundTimedOut(self.height, self.round, deadline))
        return out

    # -- the unwind primitive --------------------------------------------------------

    def abandon(self) -> RoundAbandoned | None:
        """Drop the round in flight and advance the round counter; idempotent.

        Returns the event when something was abandoned, None when it was a
        no-op (already abandoned, or the height is final).
        """
        if self.phase in (Phase.ABANDONED, Phase.FINALIZED):
            return None
        dropped = self._live.votes() if self._live else 0
        event = RoundAbandoned(self.height, self.round, dropped)
        self._live = None
        self.round += 1
        self.phase = Phase.ABANDONED
        return event

    # -- internals ---------------------------------------------------------------------

    def _leg_done(
        self, live: _InFlight, leg: LegId, value: bytes | None, now_ms: int, why: str
    ) -> list[RoundEvent]:
        live.shares.pop(leg, None)
        at = now_ms
        if value is None:
            live.tracker.on_event(LegEvent(leg, at, EventKind.FAILED))
            return [LegFailed(leg, at, why)]
        if at > live.tracker.deadline_ms:
            return []  # too late: the cert was published without it
        live.fields[leg] = value
        out: list[RoundEvent] = [LegAggregated(leg, at, len(value))]
        transition = live.tracker.on_event(LegEvent(leg, at, EventKind.ARRIVED))
        if transition is not None:
            out.append(TierRaised(transition.at_ms, transition.tier))
        if self.phase is Phase.COLLECTING:
            tier = accepted_tier(self.policy, live.fields)
            if tier is self.policy.mode:
                out.append(self._finalize(live, tier, at, fallback=False))
        return out

    def _finalize(self, live: _InFlight, tier: Mode, at_ms: int, *, fallback: bool) -> Finalized:
        self.phase = Phase.FINALIZED
        self.final = Finalized(self.height, self.round, live.ctx.block_id, tier, at_ms, fallback)
        return self.final
