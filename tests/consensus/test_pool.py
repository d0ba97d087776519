"""The signing pool: batched SLH-DSA signatures and worker-affine Corona rounds."""

from __future__ import annotations

import pytest

from zapstack.consensus.digest import CertContext, LegId, leg_digest
from zapstack.consensus.legs import corona, magnetar
from zapstack.consensus.pool import SigningPool
from zapstack.consensus.validators import ValidatorSecrets, ValidatorSet
from zapstack.errors import LocalProtocolError


def test_pool_signs_magnetar_and_corona(
    vset: ValidatorSet, secrets: list[ValidatorSecrets], ctx: CertContext
) -> None:
    with SigningPool(2) as pool:
        assert len(set(pool.pids)) == 2
        msg = leg_digest(ctx, LegId.MAGNETAR)
        sigs = pool.slh_sign(vset.slh_params, [(s.slhdsa_sk, msg) for s in secrets])
        assert len(sigs) == vset.n
        assert all(magnetar.verify_share(vset, ctx, i, sig) for i, sig in enumerate(sigs))
        field = magnetar.aggregate(vset, ctx, dict(enumerate(sigs)))
        assert magnetar.verify(vset, ctx, field) == list(range(vset.threshold_weight))
        # Corona: round 1 in workers, state stays there; round 2 routed back to it
        commits = pool.corona_round1(ctx, secrets)
        chosen = corona.choose_signers(vset, list(commits))
        assert chosen is not None
        responses = pool.corona_round2(ctx, chosen, {i: commits[i] for i in chosen})
        sig = corona.aggregate(vset, ctx, chosen, commits, responses)
        assert corona.verify(vset, ctx, sig) == []
        assert pool.corona_drop(ctx) == vset.n - len(chosen)  # unchosen sessions discarded
        with pytest.raises(LocalProtocolError, match="signing worker failed"):
            pool.corona_round2(ctx, chosen, commits)  # state is gone: no second round 2
    pool.close()  # idempotent
    with pytest.raises(LocalProtocolError, match="closed"):
        pool.slh_sign(vset.slh_params, [])
