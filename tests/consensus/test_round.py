"""The consensus round: legs aggregate independently, tiers, deadline, abandon, no reorg."""

from __future__ import annotations

import pytest

from zapstack.consensus.cert import decode
from zapstack.consensus.digest import CertContext, LegId
from zapstack.consensus.finality import FinalityLedger
from zapstack.consensus.legs import bls as bls_leg
from zapstack.consensus.legs import corona, magnetar, pulsar
from zapstack.consensus.policy import CertPolicy, Mode, Variant
from zapstack.consensus.round import (
    ConsensusRound,
    CoronaSignersChosen,
    Finalized,
    LegAggregated,
    LegFailed,
    Phase,
    RoundEvent,
    RoundTimedOut,
    ShareRejected,
    TierRaised,
)
from zapstack.consensus.validators import ValidatorSecrets, ValidatorSet
from zapstack.crypto.slhdsa import ParamSet
from zapstack.errors import InvalidBlock
from zapstack.testing.unwind import check_unwind_contract

CHAIN = 96369
BLOCK = b"the proposal at height 0"
RIVAL = b"a rival proposal at height 0"


def _policy(mode: Mode, fallback: Mode | None = None, timeout: int = 800) -> CertPolicy:
    variant = Variant.PURE_PQ if mode.value.startswith("strict") else Variant.HYBRID
    return CertPolicy(mode, variant, timeout, fallback, ParamSet.SHA2_128F)


def _vote(
    rnd: ConsensusRound, secrets: list[ValidatorSecrets], leg: LegId, who: range, now: int
) -> list[RoundEvent]:
    ctx = rnd.context
    assert ctx is not None
    sign = {
        LegId.BLS: lambda s: bls_leg.sign_share(s, ctx),
        LegId.PULSAR: lambda s: pulsar.sign_share(s, ctx),
        LegId.MAGNETAR: lambda s: magnetar.sign_share(s, ctx, ParamSet.SHA2_128F),
    }[leg]
    out: list[RoundEvent] = []
    for i in who:
        out += rnd.on_share(leg, i, sign(secrets[i]), now)
    return out


def _corona(
    rnd: ConsensusRound, secrets: list[ValidatorSecrets], now: int, *, corrupt: bool = False
) -> list[RoundEvent]:
    ctx = rnd.context
    assert ctx is not None
    signers = {i: corona.CoronaSigner(secrets[i], corona.session_of(ctx)) for i in range(5)}
    out: list[RoundEvent] = []
    for i, s in signers.items():
        out += rnd.on_corona_commit(i, s.commitment, now)
    chosen = [e for e in out if isinstance(e, CoronaSignersChosen)]
    assert len(chosen) == 1 and len(chosen[0].signers) == rnd.vset.corona_threshold
    for i in chosen[0].signers:
        resp = signers[i].respond(ctx, chosen[0].signers, chosen[0].commitments)
        if corrupt and i == chosen[0].signers[0]:
            resp = resp[:-8] + bytes(8)
        out += rnd.on_corona_response(i, resp, now)
    return out


def test_legs_raise_the_tier_and_finalize_at_mode(
    vset: ValidatorSet, secrets: list[ValidatorSecrets]
) -> None:
    rnd = ConsensusRound(vset, _policy(Mode.PQ_FAST), CHAIN, 0)
    assert rnd.propose(BLOCK, 0) == []
    # Pulsar first: hybrid tier stays empty until BLS arrives
    ev = _vote(rnd, secrets, LegId.PULSAR, range(4), 5)
    assert [type(e) for e in ev] == [LegAggregated]
    ev = _vote(rnd, secrets, LegId.BLS, range(3), 8)
    assert ev == [] and rnd.pending_votes == 3
    ev = _vote(rnd, secrets, LegId.BLS, range(3, 5), 10)
    assert ev[0] == LegAggregated(LegId.BLS, 10, vset.bitmap_len + 96)
    assert TierRaised(10, Mode.PQ_FAST) in ev
    fin = [e for e in ev if isinstance(e, Finalized)]
    assert (
        fin and fin[0].tier is Mode.PQ_FAST and not fin[0].fallback and rnd.phase is Phase.FINALIZED
    )
    # slower legs still upgrade the published cert
    ev = _corona(rnd, secrets, 350)
    assert TierRaised(350, Mode.PQ_STRICT) in ev
    ev = _vote(rnd, secrets, LegId.MAGNETAR, range(4), 400)
    assert TierRaised(400, Mode.PQ_HEAVY) in ev
    cert = rnd.cert()
    assert cert is not None and all(cert.field(leg) for leg in LegId)
    ledger = FinalityLedger(CHAIN, vset, _policy(Mode.PQ_HEAVY))
    rec = ledger.accept(BLOCK, decode(cert.encode()))
    assert rec.tier is Mode.PQ_HEAVY and ledger.next_height == 1


def test_failed_corona_falls_back_at_the_deadline(
    vset: ValidatorSet, secrets: list[ValidatorSecrets]
) -> None:
    rnd = ConsensusRound(vset, _policy(Mode.PQ_HEAVY, Mode.PQ_FAST), CHAIN, 0)
    rnd.propose(BLOCK, 1000)
    _vote(rnd, secrets, LegId.BLS, range(4), 1010)
    _vote(rnd, secrets, LegId.PULSAR, range(4), 1015)
    ev = _corona(rnd, secrets, 1350, corrupt=True)
    assert any(isinstance(e, LegFailed) and e.leg is LegId.CORONA for e in ev)
    _vote(rnd, secrets, LegId.MAGNETAR, range(4), 1400)
    assert rnd.phase is Phase.COLLECTING and rnd.on_timer(1799) == []
    ev = rnd.on_timer(1800)
    assert ev == [Finalized(0, 0, rnd.context.block_id, Mode.PQ_FAST, 1800, True)]  # type: ignore[union-attr]
    cert = rnd.cert()
    assert cert is not None and cert.corona == b"" and cert.magnetar != b""
    assert FinalityLedger(CHAIN, vset, rnd.policy).accept(BLOCK, cert).tier is Mode.PQ_FAST


def test_timeout_then_abandon_then_next_round(
    vset: ValidatorSet, secrets: list[ValidatorSecrets]
) -> None:
    rnd = ConsensusRound(vset, _policy(Mode.PQ_FAST, timeout=30), CHAIN, 0)
    rnd.propose(BLOCK, 0)
    _vote(rnd, secrets, LegId.BLS, range(2), 5)
    ev = rnd.on_timer(30)
    assert RoundTimedOut(0, 0, 30) in ev
    assert {e.leg for e in ev if isinstance(e, LegFailed)} == set(LegId)
    old_ctx = rnd.context
    assert old_ctx is not None
    dropped = rnd.abandon()
    assert dropped is not None and dropped.dropped_votes == 2 and rnd.round == 1
    assert rnd.abandon() is None and rnd.round == 1  # idempotent
    # a late vote for round 0 is dropped
    late = bls_leg.sign_share(secrets[3], old_ctx)
    assert rnd.on_share(LegId.BLS, 3, late, 40) == []
    assert rnd.on_share(LegId.BLS, 3, late, 40, round_=0) == []
    rnd.propose(RIVAL, 50)  # a different block may be proposed in the new round
    ctx = rnd.context
    assert ctx is not None and ctx.round == 1
    ev = _vote(rnd, secrets, LegId.BLS, range(4), 55) + _vote(
        rnd, secrets, LegId.PULSAR, range(4), 60
    )
    assert any(isinstance(e, Finalized) and e.round == 1 for e in ev)


def test_bad_votes_rejected_round_survives(
    vset: ValidatorSet, secrets: list[ValidatorSecrets]
) -> None:
    rnd = ConsensusRound(vset, _policy(Mode.PQ_OFF, timeout=30), CHAIN, 0)
    rnd.propose(BLOCK, 0)
    ctx = rnd.context
    assert ctx is not None
    wrong = CertContext(CHAIN, 0, 0, bytes(32), vset.root)
    assert rnd.on_share(LegId.BLS, 0, bls_leg.sign_share(secrets[0], wrong), 1) == [
        ShareRejected(LegId.BLS, 0, "signature does not verify")
    ]
    assert isinstance(rnd.on_share(LegId.BLS, 9, b"\x00" * 96, 1)[0], ShareRejected)
    assert isinstance(
        rnd.on_share(LegId.BLS, 1, bls_leg.sign_share(secrets[0], ctx), 1)[0], ShareRejected
    )
    assert rnd.on_corona_commit(77, b"junk", 1) == []
    ev = _vote(rnd, secrets, LegId.BLS, range(4), 2)
    assert any(isinstance(e, Finalized) for e in ev)


def test_no_competing_block_at_a_finalized_height(
    vset: ValidatorSet, secrets: list[ValidatorSecrets]
) -> None:
    policy = _policy(Mode.PQ_OFF, timeout=30)
    rnd = ConsensusRound(vset, policy, CHAIN, 0)
    rnd.propose(BLOCK, 0)
    with pytest.raises(InvalidBlock, match="equivocation"):
        rnd.propose(RIVAL, 1)
    _vote(rnd, secrets, LegId.BLS, range(4), 2)
    assert rnd.phase is Phase.FINALIZED and rnd.abandon() is None
    with pytest.raises(InvalidBlock, match="final"):
        rnd.propose(RIVAL, 3)
    assert rnd.propose(BLOCK, 3) == []
    ledger = FinalityLedger(CHAIN, vset, policy)
    cert = rnd.cert()
    assert cert is not None
    ledger.accept(BLOCK, cert)
    assert ledger.accept(BLOCK, cert).block_id == ledger.get(0).block_id  # type: ignore[union-attr]
    # a fully valid cert for a rival block (another round) still cannot replace it
    rival = ConsensusRound(vset, policy, CHAIN, 0)
    rival.abandon()
    rival.propose(RIVAL, 0)
    _vote(rival, secrets, LegId.BLS, range(4), 1)
    rival_cert = rival.cert()
    assert rival_cert is not None and rival.phase is Phase.FINALIZED
    with pytest.raises(InvalidBlock, match="competing block"):
        ledger.accept(RIVAL, rival_cert)
    assert ledger.get(0).block_id == cert.block_id  # type: ignore[union-attr]


def test_abandon_satisfies_the_unwind_contract(
    vset: ValidatorSet, secrets: list[ValidatorSecrets]
) -> None:
    policy = _policy(Mode.PQ_FAST, timeout=30)

    def fresh() -> tuple[ConsensusRound, object]:
        return ConsensusRound(vset, policy, CHAIN, 0), (1, Phase.ABANDONED, 0, None)

    def collecting() -> tuple[ConsensusRound, object]:
        rnd = ConsensusRound(vset, policy, CHAIN, 0)
        rnd.propose(BLOCK, 0)
        _vote(rnd, secrets, LegId.BLS, range(3), 1)
        return rnd, (1, Phase.ABANDONED, 0, None)

    def timed_out() -> tuple[ConsensusRound, object]:
        rnd, _ = collecting()
        rnd.on_timer(30)
        return rnd, (1, Phase.ABANDONED, 0, None)

    def abandoned() -> tuple[ConsensusRound, object]:
        rnd, _ = collecting()
        rnd.abandon()
        return rnd, (1, Phase.ABANDONED, 0, None)

    def finalized() -> tuple[ConsensusRound, object]:
        rnd = ConsensusRound(vset, policy, CHAIN, 0)
        rnd.propose(BLOCK, 0)
        _vote(rnd, secrets, LegId.BLS, range(4), 1)
        _vote(rnd, secrets, LegId.PULSAR, range(4), 2)
        return rnd, (0, Phase.FINALIZED, 0, rnd.context)

    checked = check_unwind_contract(
        {
            "fresh": fresh,
            "collecting": collecting,
            "timed-out": timed_out,
            "abandoned": abandoned,
            "finalized": finalized,
        },
        unwind=lambda r: r.abandon(),
        observe=lambda r: (r.round, r.phase, r.pending_votes, r.context),
        racers=0,  # single-threaded by contract: the caller serialises (node/consensus.py)
    )
    assert checked == 5
