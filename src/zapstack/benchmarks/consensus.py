"""Row "Consensus round (4 legs)": leg-serial vs leg-parallel QuasarCert rounds.

One process plays all ``t`` signers of an ``n``-validator set
(:func:`~zapstack.consensus.validators.generate_validators`, real keys, a
real Ringtail deal) and builds a complete four-leg QuasarCert -- sign all
shares, aggregate, verify -- for each of BLS, Pulsar (ML-DSA-65 quorum),
Corona (two-round Ringtail threshold) and Magnetar (SLH-DSA-SHA2-128f
quorum).  Corona and Magnetar hold the GIL, so each gets one signing worker
process (:class:`~zapstack.consensus.pool.SigningPool`); BLS and Pulsar run in
threads (blspy and OpenSSL release the GIL).  The *same* workers serve both
runs, so the ratio measures leg parallelism only:

* **serial**: the four legs one after another (a fresh round context);
* **pipelined**: the four legs launched together on four threads; the round
  ends when the last leg's field verifies (wall clock of the whole round);
* **native limit**: the slowest leg measured alone in the serial runs -- a
  leg-parallel round cannot beat it by more than run-to-run noise (a
  Ringtail round's time varies: rejection sampling).

Serial and parallel rounds take turns, ``repeat`` of each; medians reported.

The spec's 14 s serial baseline is the legacy Corona implementation; this
row is the parallelism gate only (LP-0202 §Performance characteristics).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from zapstack.benchmarks.result import RowResult, cores, time_ratio
from zapstack.consensus.cert import QuasarCert
from zapstack.consensus.digest import CertContext, LegId, block_id, leg_digest
from zapstack.consensus.legs import bls, corona, magnetar, pulsar
from zapstack.consensus.pool import SigningPool
from zapstack.consensus.validators import ValidatorSecrets, ValidatorSet, generate_validators
from zapstack.crypto.slhdsa import ParamSet

__all__ = ["Round", "run"]

LegRun = Callable[[CertContext], bytes]


class Round:
    """The four legs of one cert round for ``t`` simulated signers."""

    def __init__(
        self,
        vset: ValidatorSet,
        secrets: list[ValidatorSecrets],
        corona_pool: SigningPool,
        slh_pool: SigningPool,
    ) -> None:
        self.vset = vset
        self.signers = secrets[: vset.threshold_weight]
        self.corona_pool = corona_pool
        self.slh_pool = slh_pool
        self.legs: dict[LegId, LegRun] = {
            LegId.BLS: self.bls,
            LegId.PULSAR: self.pulsar,
            LegId.CORONA: self.corona,
            LegId.MAGNETAR: self.magnetar,
        }

    def ctx(self, round_: int) -> CertContext:
        """A fresh round context (Corona sessions are never reused)."""
        return CertContext(96369, 1, round_, block_id(b"perf block %d" % round_), self.vset.root)

    def bls(self, ctx: CertContext) -> bytes:
        """BLS leg: t shares, aggregate, FastAggregateVerify."""
        shares = {s.index: bls.sign_share(s, ctx) for s in self.signers}
        field = bls.aggregate(self.vset, ctx, shares)
        bls.verify(self.vset, ctx, field)
        return field

    def pulsar(self, ctx: CertContext) -> bytes:
        """Pulsar leg: t ML-DSA-65 signatures, pack, verify."""
        shares = {s.index: pulsar.sign_share(s, ctx) for s in self.signers}
        field = pulsar.aggregate(self.vset, ctx, shares)
        pulsar.verify(self.vset, ctx, field)
        return field

    def magnetar(self, ctx: CertContext) -> bytes:
        """Magnetar leg: t SLH-DSA signatures in the worker, pack, verify."""
        msg = leg_digest(ctx, LegId.MAGNETAR)
        sigs = self.slh_pool.slh_sign(
            self.vset.slh_params, [(s.slhdsa_sk, msg) for s in self.signers]
        )
        field = magnetar.aggregate(self.vset, ctx, dict(enumerate(sigs)))
        magnetar.verify(self.vset, ctx, field)
        return field

    def corona(self, ctx: CertContext) -> bytes:
        """Corona leg: Ringtail round 1 and 2 in the worker, combine, verify."""
        commits = self.corona_pool.corona_round1(ctx, self.signers)
        chosen = corona.choose_signers(self.vset, list(commits))
        if chosen is None:
            raise AssertionError("not enough Corona commitments")
        responses = self.corona_pool.corona_round2(ctx, chosen, commits)
        field = corona.aggregate(self.vset, ctx, chosen, commits, responses)
        corona.verify(self.vset, ctx, field)
        return field

    def serial(self, ctx: CertContext) -> tuple[float, dict[LegId, float], QuasarCert]:
        """The legs one after another: (wall seconds, per-leg seconds, cert)."""
        cert = QuasarCert.empty(ctx)
        per: dict[LegId, float] = {}
        t0 = time.perf_counter()
        for leg, fn in self.legs.items():
            s0 = time.perf_counter()
            cert = cert.with_field(leg, fn(ctx))
            per[leg] = time.perf_counter() - s0
        return time.perf_counter() - t0, per, cert

    def parallel(self, ctx: CertContext) -> tuple[float, dict[LegId, float], QuasarCert]:
        """All four legs at once: (wall seconds, per-leg completion time, cert)."""
        fields: dict[LegId, bytes] = {}
        done: dict[LegId, float] = {}
        with ThreadPoolExecutor(max_workers=len(self.legs)) as ex:
            t0 = time.perf_counter()

            def one(leg: LegId) -> None:
                fields[leg] = self.legs[leg](ctx)
                done[leg] = time.perf_counter() - t0

            list(ex.map(one, list(self.legs)))
            wall = time.perf_counter() - t0
        cert = QuasarCert.empty(ctx)
        for leg in self.legs:
            cert = cert.with_field(leg, fields[leg])
        return wall, done, cert


def run(validators: int = 40, *, repeat: int = 3) -> RowResult:
    """Measure ``repeat`` leg-serial and leg-parallel rounds (in turns); medians."""
    start = time.perf_counter()
    vset, secrets = generate_validators(
        validators, b"perf-consensus", slh_params=ParamSet.SHA2_128F
    )
    setup = time.perf_counter() - start
    corona_pool, slh_pool = SigningPool(1), SigningPool(1)
    try:
        rnd = Round(vset, secrets, corona_pool, slh_pool)
        rnd.serial(rnd.ctx(99))  # warm every leg (imports, caches, worker-side state)
        serial_runs, parallel_runs = [], []
        for i in range(max(1, repeat)):  # in turns, each round on a fresh context
            serial_runs.append(rnd.serial(rnd.ctx(2 * i + 1)))
            parallel_runs.append(rnd.parallel(rnd.ctx(2 * i + 2)))
    finally:
        corona_pool.close()
        slh_pool.close()
    for (_, _, cert_s), (_, _, cert_p) in zip(serial_runs, parallel_runs, strict=True):
        if len(cert_s.encode()) != len(cert_p.encode()) or not all(
            cert.field(leg) for cert in (cert_s, cert_p) for leg in LegId
        ):
            raise AssertionError("a round did not produce a full four-leg cert")
    serial = statistics.median(r[0] for r in serial_runs)
    parallel = statistics.median(r[0] for r in parallel_runs)
    per_leg = {leg: statistics.median(r[1][leg] for r in serial_runs) for leg in LegId}
    done = {leg: statistics.median(r[1][leg] for r in parallel_runs) for leg in LegId}
    cert_p = parallel_runs[0][2]
    slowest = max(per_leg, key=lambda leg: per_leg[leg])
    extras = {f"serial_{leg.label.lower()}_ms": s * 1e3 for leg, s in per_leg.items()}
    extras |= {f"parallel_{leg.label.lower()}_done_ms": s * 1e3 for leg, s in done.items()}
    extras |= {"keygen_and_deal_s": setup, "cert_bytes": float(len(cert_p.encode()))}
    return RowResult(
        key="consensus_round",
        op=f"Consensus round (4 legs, n={validators}, t={vset.threshold_weight})",
        serial_label="leg-serial",
        pipelined_label="leg-parallel (4 legs at once)",
        serial=serial * 1e3,
        pipelined=parallel * 1e3,
        unit="ms",
        higher_is_better=False,
        ratio=time_ratio(parallel, serial),
        spec_win="~32x (vs legacy serial Corona)",
        native_limit=per_leg[slowest] * 1e3,
        native_label=f"slowest leg alone ({slowest.label}, median)",
        notes=(
            f"all {vset.threshold_weight} signers simulated on {cores()} cores; "
            "Corona and Magnetar on one worker process each in both runs"
        ),
        extras=extras,
        seconds=time.perf_counter() - start,
    )
