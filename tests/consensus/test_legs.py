"""Leg-level behaviour: share checks, aggregation rules, Corona's t-of-n and single use."""

from __future__ import annotations

import pytest

from zapstack.consensus.digest import CertContext, LegId
from zapstack.consensus.legs import bls as bls_leg
from zapstack.consensus.legs import corona, magnetar, pulsar
from zapstack.consensus.validators import ValidatorSecrets, ValidatorSet, decode_bitmap
from zapstack.errors import InvalidCert, LocalProtocolError


def _corona_sig(
    vset: ValidatorSet, secrets: list[ValidatorSecrets], ctx: CertContext, signers: list[int]
) -> bytes:
    sess = corona.session_of(ctx)
    party = {i: corona.CoronaSigner(secrets[i], sess) for i in signers}
    commits = {i: p.commitment for i, p in party.items()}
    responses = {i: p.respond(ctx, signers, commits) for i, p in party.items()}
    return corona.aggregate(vset, ctx, signers, commits, responses)


@pytest.mark.parametrize("signers", [[0, 1, 2, 3], [1, 2, 3, 4], [0, 2, 3, 4]])
def test_corona_any_t_signers(
    vset: ValidatorSet, secrets: list[ValidatorSecrets], ctx: CertContext, signers: list[int]
) -> None:
    sig = _corona_sig(vset, secrets, ctx, signers)
    assert corona.verify(vset, ctx, sig) == []


def test_corona_t_minus_one_cannot(
    vset: ValidatorSet, secrets: list[ValidatorSecrets], ctx: CertContext
) -> None:
    few = [0, 1, 2]
    assert corona.choose_signers(vset, few) is None
    assert corona.choose_signers(vset, [4, 3, 2, 1, 0]) == [0, 1, 2, 3]
    sess = corona.session_of(ctx)
    party = {i: corona.CoronaSigner(secrets[i], sess) for i in [0, 1, 2, 3]}
    commits = {i: p.commitment for i, p in party.items()}
    with pytest.raises(LocalProtocolError):  # Ringtail refuses a signer set below t
        party[0].respond(ctx, few, {i: commits[i] for i in few})
    responses = {i: party[i].respond(ctx, [0, 1, 2, 3], commits) for i in (1, 2, 3)}
    with pytest.raises(InvalidCert, match="below threshold"):
        corona.aggregate(vset, ctx, few, commits, responses)
    with pytest.raises(InvalidCert, match="no commitment/response from signers"):
        corona.aggregate(vset, ctx, [0, 1, 2, 3], commits, responses)


def test_corona_altered_signature_fails(
    vset: ValidatorSet, secrets: list[ValidatorSecrets], ctx: CertContext, other_ctx: CertContext
) -> None:
    sig = _corona_sig(vset, secrets, ctx, [0, 1, 2, 3])
    for pos in (0, len(sig) // 2, len(sig) - 1):
        bad = bytearray(sig)
        bad[pos] ^= 0x01
        with pytest.raises(InvalidCert, match="corona"):
            corona.verify(vset, ctx, bytes(bad))
    with pytest.raises(InvalidCert, match="corona"):
        corona.verify(vset, other_ctx, sig)
    with pytest.raises(InvalidCert, match="corona"):
        corona.verify(vset, ctx, sig[:-1])


def test_corona_signer_is_single_use(
    vset: ValidatorSet, secrets: list[ValidatorSecrets], ctx: CertContext, other_ctx: CertContext
) -> None:
    sess = corona.session_of(ctx)
    signers = [0, 1, 2, 3]
    party = {i: corona.CoronaSigner(secrets[i], sess) for i in signers}
    commits = {i: p.commitment for i, p in party.items()}
    party[0].respond(ctx, signers, commits)
    with pytest.raises(LocalProtocolError, match="already answered"):
        party[0].respond(other_ctx, signers, commits)  # same session, another block: refused
    with pytest.raises(LocalProtocolError, match="not in the chosen signer set"):
        corona.CoronaSigner(secrets[4], sess).respond(ctx, signers, commits)
    party[1].discard()
    party[1].discard()
    with pytest.raises(LocalProtocolError, match="discarded"):
        party[1].respond(ctx, signers, commits)
    moved = CertContext(ctx.chain_id, ctx.height, ctx.round + 1, ctx.block_id, ctx.vset_root)
    with pytest.raises(LocalProtocolError, match="different session"):
        party[2].respond(moved, signers, commits)


def test_nonces_bound_to_the_session(secrets: list[ValidatorSecrets], ctx: CertContext) -> None:
    a = corona.CoronaSigner(secrets[0], corona.session_of(ctx)).commitment
    again = corona.CoronaSigner(secrets[0], corona.session_of(ctx)).commitment
    moved = CertContext(ctx.chain_id, ctx.height, ctx.round + 1, ctx.block_id, ctx.vset_root)
    b = corona.CoronaSigner(secrets[0], corona.session_of(moved)).commitment
    assert a == again and a != b


@pytest.mark.parametrize(
    ("leg", "sign", "verify_share"),
    [
        (LegId.BLS, bls_leg.sign_share, bls_leg.verify_share),
        (LegId.PULSAR, pulsar.sign_share, pulsar.verify_share),
    ],
    ids=["bls", "pulsar"],
)
def test_share_checks(
    vset: ValidatorSet,
    secrets: list[ValidatorSecrets],
    ctx: CertContext,
    other_ctx: CertContext,
    leg: LegId,
    sign: object,
    verify_share: object,
) -> None:
    share = sign(secrets[2], ctx)  # type: ignore[operator]
    assert verify_share(vset, ctx, 2, share)  # type: ignore[operator]
    assert not verify_share(vset, ctx, 1, share)  # type: ignore[operator]
    assert not verify_share(vset, other_ctx, 2, share)  # type: ignore[operator]
    assert not verify_share(vset, ctx, 99, share)  # type: ignore[operator]


def test_accountable_aggregation_takes_fewest_signers(
    vset: ValidatorSet, secrets: list[ValidatorSecrets], ctx: CertContext
) -> None:
    shares = {i: magnetar.sign_share(s, ctx, vset.slh_params) for i, s in enumerate(secrets)}
    assert magnetar.verify_share(vset, ctx, 0, shares[0])
    field = magnetar.aggregate(vset, ctx, shares)
    assert decode_bitmap(vset.n, field[: vset.bitmap_len]) == [0, 1, 2, 3]
    bls_all = bls_leg.aggregate(
        vset, ctx, {i: bls_leg.sign_share(s, ctx) for i, s in enumerate(secrets)}
    )
    assert bls_leg.verify(vset, ctx, bls_all) == [0, 1, 2, 3, 4]  # BLS keeps every signer
    with pytest.raises(InvalidCert, match="below threshold"):
        pulsar.aggregate(vset, ctx, {i: pulsar.sign_share(secrets[i], ctx) for i in range(3)})


def test_entropy_gives_fresh_nonces_and_none_keeps_the_derivation(
    secrets: list[ValidatorSecrets], ctx: CertContext
) -> None:
    sess = corona.session_of(ctx)
    plain = corona.CoronaSigner(secrets[0], sess).commitment
    assert corona.CoronaSigner(secrets[0], sess, b"").commitment == plain
    a = corona.CoronaSigner(secrets[0], sess, b"\x01" * 32).commitment
    b = corona.CoronaSigner(secrets[0], sess, b"\x02" * 32).commitment
    assert len({plain, a, b}) == 3


def test_presessions_prepare_each_key_once_and_hand_it_out_once(
    secrets: list[ValidatorSecrets], ctx: CertContext
) -> None:
    pool = corona.Presessions(lookahead=2)
    assert pool.wanted(7) == [(7, 0), (8, 0)]
    assert pool.reserve((7, 0)) and not pool.reserve((7, 0))
    assert pool.wanted(7) == [(8, 0)]
    signer = corona.CoronaSigner(secrets[0], corona.session_of(ctx), b"\x07" * 32)
    pool.add((7, 0), signer)
    assert pool.commitment((7, 0)) == signer.commitment and len(pool) == 1
    again = corona.CoronaSigner(secrets[0], corona.session_of(ctx), b"\x08" * 32)
    with pytest.raises(LocalProtocolError, match="not reserved or was prepared"):
        pool.add((7, 0), again)
    assert not again.open  # a refused session is erased, never kept around
    assert pool.take((7, 0)) is signer
    assert pool.take((7, 0)) is None  # consumed on use
    assert pool.wanted(7) == [(8, 0)]  # and never prepared again


def test_a_vote_spends_a_key_whose_round1_is_still_in_flight(
    secrets: list[ValidatorSecrets], ctx: CertContext
) -> None:
    pool = corona.Presessions()
    assert pool.reserve((7, 0))
    assert pool.take((7, 0)) is None  # the vote went ahead with a fresh session
    late = corona.CoronaSigner(secrets[0], corona.session_of(ctx), b"\x09" * 32)
    with pytest.raises(LocalProtocolError):
        pool.add((7, 0), late)  # the late one is void: one session per key
    assert not late.open


def test_presessions_are_destroyed_when_the_chain_passes_them(
    secrets: list[ValidatorSecrets], ctx: CertContext
) -> None:
    pool = corona.Presessions(lookahead=3)
    made = {}
    for h in (7, 8, 9):
        assert pool.reserve((h, 0))
        made[h] = corona.CoronaSigner(secrets[0], corona.session_of(ctx), bytes([h]) * 32)
        pool.add((h, 0), made[h])
    assert pool.drop_before(7, 1) == 1  # round change at height 7: (7, 0) never runs
    assert not made[7].open and pool.take((7, 0)) is None
    assert pool.drop_before(9) == 1  # heights 7 and 8 committed
    assert not made[8].open and made[9].open and len(pool) == 1


def test_preprocessed_session_answers_round2_once(
    vset: ValidatorSet, secrets: list[ValidatorSecrets], ctx: CertContext, other_ctx: CertContext
) -> None:
    # round 1 for (height 7, round 0) runs before the block exists; the block
    # only enters round 2, which the prepared state answers exactly once
    sess = corona.session_of(ctx)
    signers = [0, 1, 2, 3]
    pool = {i: corona.Presessions() for i in signers}
    for i in signers:
        assert pool[i].reserve((7, 0))
        pool[i].add((7, 0), corona.CoronaSigner(secrets[i], sess, bytes([i]) * 32))
    commits = {i: pool[i].commitment((7, 0)) or b"" for i in signers}
    party = {i: pool[i].take((7, 0)) for i in signers}
    corona.prepare_session(vset, sess, signers, commits)
    responses = {}
    for i, signer in party.items():
        assert signer is not None
        signer.prime(signers, commits)
        responses[i] = signer.respond(ctx, signers, commits)
    sig = corona.aggregate(vset, ctx, signers, commits, responses)
    assert corona.verify(vset, ctx, sig) == []
    with pytest.raises(LocalProtocolError, match="already answered"):
        party[0].respond(ctx, signers, commits)  # same prepared state, same block: refused
    with pytest.raises(LocalProtocolError, match="already answered"):
        party[1].respond(other_ctx, signers, commits)  # or another block
