"""Phase 3, aggregate: the proposer gathers shares and publishes the cert.

Contract
--------
* :func:`on_share` feeds a SHARE / CORONA_COMMIT / CORONA_RESPONSE for a round
  we aggregate into its :class:`~zapstack.consensus.round.ConsensusRound` (in
  a worker thread) and hands the round's events to :func:`emit`; a share for
  a round we do not aggregate, or naming an unknown leg, is ignored.
* :func:`emit` turns round events into messages, one handler per event type
  (:data:`_ON_EVENT`): t Corona commitments in -> CORONA_SIGNERS to the chosen
  signers (the other validators get the signer indices without commitments,
  so they erase their round-1 state at once); the observed tier meets the
  policy Mode -> FINAL (cert + block) to everyone, exactly once per round;
  a leg aggregated after that -> one CERT_UPGRADE carrying the stronger
  cert.  A leg that never reaches threshold only leaves its field empty: the
  cert never waits for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zapstack.consensus.digest import LegId
from zapstack.consensus.round import (
    CoronaSignersChosen,
    Finalized,
    LegAggregated,
    LegFailed,
    RoundEvent,
    TierRaised,
)
from zapstack.node.engine.state import Aggregation, HeightRecord, log, present_legs, tier_name
from zapstack.node.wire import Message, MsgType, encode_final, encode_signers
from zapstack.zap.frames import parse_block

if TYPE_CHECKING:
    from zapstack.node.engine.core import Consensus

__all__ = ["emit", "on_share", "send_signers"]

_SHARE_LEGS = (1, 2, 4)
"""Leg ids a SHARE message may carry (BLS, Pulsar, Magnetar; Corona has its own messages)."""


async def on_share(c: Consensus, msg: Message) -> None:
    """One vote message for a round we aggregate: into the round, events out."""
    agg = c.aggs.get((msg.height, msg.round))
    if agg is None:
        return
    now = c.io.now_ms()
    cr = agg.round
    async with agg.lock:  # the round is single-threaded: one call (and its events) at a time
        if msg.type is MsgType.SHARE:
            leg = LegId(msg.payload[0]) if msg.payload[0] in _SHARE_LEGS else None
            if leg is None:
                return
            events = await c.io.run(cr.on_share, leg, msg.sender, msg.payload[1:], now, msg.round)
        elif msg.type is MsgType.CORONA_COMMIT:
            events = await c.io.run(cr.on_corona_commit, msg.sender, msg.payload, now, msg.round)
        else:
            events = await c.io.run(cr.on_corona_response, msg.sender, msg.payload, now, msg.round)
        emit(c, agg, (msg.height, msg.round), events)


def emit(c: Consensus, agg: Aggregation, key: tuple[int, int], events: list[RoundEvent]) -> None:
    """Act on a round's events; send one CERT_UPGRADE if a leg landed after FINAL."""
    upgraded = False
    for ev in events:
        handler = _ON_EVENT.get(type(ev))
        if handler is not None and handler(c, agg, key, ev):
            upgraded = True
    if upgraded and agg.final_sent:
        cert = agg.round.cert()
        if cert is not None:
            c.io.broadcast(MsgType.CERT_UPGRADE, *key, cert.encode())


def _signers_chosen(
    c: Consensus, agg: Aggregation, key: tuple[int, int], ev: CoronaSignersChosen
) -> bool:
    if c.signers_fixed.get(key) != tuple(ev.signers):  # else announced ahead already
        send_signers(c, key, tuple(ev.signers), dict(ev.commitments))
    return False


def send_signers(
    c: Consensus, key: tuple[int, int], signers: tuple[int, ...], commitments: dict[int, bytes]
) -> None:
    """CORONA_SIGNERS to the chosen signers; the indices alone to everyone else."""
    payload = encode_signers(commitments)
    notice = encode_signers({i: b"" for i in signers})  # "the set is fixed without you"
    for i in range(c.g.vset.n):
        c.io.send(i, MsgType.CORONA_SIGNERS, *key, payload if i in signers else notice)


def _leg_aggregated(
    c: Consensus, agg: Aggregation, key: tuple[int, int], ev: LegAggregated
) -> bool:
    """Record when the leg landed; True when it upgrades an already final cert."""
    agg.legs[ev.leg.label] = ev.at_ms - agg.started_ms
    if agg.record is None:
        return False
    agg.record.legs_ms[ev.leg.label] = agg.legs[ev.leg.label]
    return True


def _leg_failed(c: Consensus, agg: Aggregation, key: tuple[int, int], ev: LegFailed) -> bool:
    log.info("height %d round %d: leg %s failed: %s", *key, ev.leg.label, ev.reason)
    agg.legs.setdefault(ev.leg.label, -1)
    if agg.record is not None:
        agg.record.legs_ms.setdefault(ev.leg.label, -1)
    return False


def _tier_raised(c: Consensus, agg: Aggregation, key: tuple[int, int], ev: TierRaised) -> bool:
    if agg.record is not None:
        agg.record.tier = ev.tier.value
    return False


def _finalized(c: Consensus, agg: Aggregation, key: tuple[int, int], ev: Finalized) -> bool:
    """The policy tier is met: broadcast FINAL once and keep the round's record."""
    if agg.final_sent:
        return False
    agg.final_sent = True
    cert = agg.round.cert()
    assert cert is not None
    block = parse_block(agg.block)
    h, r = key
    agg.record = HeightRecord(
        h,
        r,
        ev.block_id.hex(),
        block.tx_count,
        c.me,
        tier_name(c.g.policy, present_legs(cert)),
        legs_ms=dict(agg.legs),
        finalized_ms=ev.at_ms - agg.started_ms,
    )
    c.io.broadcast(MsgType.FINAL, h, r, encode_final(cert.encode(), agg.block))
    return False


_ON_EVENT: dict[type[Any], Callable[[Consensus, Aggregation, tuple[int, int], Any], bool]] = {
    CoronaSignersChosen: _signers_chosen,
    LegAggregated: _leg_aggregated,
    LegFailed: _leg_failed,
    TierRaised: _tier_raised,
    Finalized: _finalized,
}
"""Round event type -> its handler; True from a handler means "the cert got stronger"."""
