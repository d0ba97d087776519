"""Consensus round at 40 validators (threshold 27), one process plus signing workers.

Prints, per leg: sign (all t shares), aggregate, verify times and cert field
size; then the round three ways, measured in this run:

* leg-serial      -- the legs one after another (each with the same workers)
* leg-parallel    -- the four legs launched together (wall = max(legs) + fan-out)
* single-process  -- the legs one after another with no worker processes

and the ratios.  Corona and Magnetar each get one worker process (the same in
the serial and the parallel run); BLS and Pulsar run in threads of the main
process (blspy and OpenSSL release the GIL).  Corona and Magnetar each get one worker process (the same in
the serial and the parallel run); BLS and Pulsar run in threads of the main
process (blspy and OpenSSL release the GIL).  In the leg-parallel run each leg's completion time is fed to
the tier tracker, so the observed-tier timeline of a real round is printed too.
Magnetar uses SLH-DSA-SHA2-128f (devnet); one SHAKE-192s signature is timed
for the conformance profile.  Validators' signing is simulated in this process
(and its workers), so "sign" is the CPU cost of all t signers together.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from zapstack.consensus.cert import QuasarCert
from zapstack.consensus.digest import CertContext, LegId, block_id, leg_digest
from zapstack.consensus.legs import bls as bls_leg
from zapstack.consensus.legs import corona, magnetar, pulsar
from zapstack.consensus.policy import CertPolicy, Mode, Variant
from zapstack.consensus.pool import SigningPool
from zapstack.consensus.tiers import EventKind, LegEvent, TierTracker
from zapstack.consensus.validators import ValidatorSecrets, ValidatorSet, generate_validators
from zapstack.crypto import slhdsa
from zapstack.crypto.slhdsa import ParamSet

N = 40
Timing = dict[str, float]


class Bench:
    def __init__(self, vset: ValidatorSet, secrets: list[ValidatorSecrets]) -> None:
        self.vset, self.secrets = vset, secrets
        self.t = vset.threshold_weight
        self.signers = secrets[: self.t]
        self.corona_pool: SigningPool | None = None
        self.slh_pool: SigningPool | None = None

    def ctx(self, round_: int) -> CertContext:
        return CertContext(96369, 1, round_, block_id(b"bench block %d" % round_), self.vset.root)

    def run_bls(self, ctx: CertContext) -> tuple[bytes, Timing]:
        t0 = time.perf_counter()
        shares = {s.index: bls_leg.sign_share(s, ctx) for s in self.signers}
        t1 = time.perf_counter()
        field = bls_leg.aggregate(self.vset, ctx, shares)
        t2 = time.perf_counter()
        bls_leg.verify(self.vset, ctx, field)
        t3 = time.perf_counter()
        return field, {"sign": t1 - t0, "aggregate": t2 - t1, "verify": t3 - t2}

    def run_pulsar(self, ctx: CertContext) -> tuple[bytes, Timing]:
        t0 = time.perf_counter()
        shares = {s.index: pulsar.sign_share(s, ctx) for s in self.signers}
        t1 = time.perf_counter()
        field = pulsar.aggregate(self.vset, ctx, shares)
        t2 = time.perf_counter()
        pulsar.verify(self.vset, ctx, field)
        t3 = time.perf_counter()
        return field, {"sign": t1 - t0, "aggregate": t2 - t1, "verify": t3 - t2}

    def run_magnetar(self, ctx: CertContext) -> tuple[bytes, Timing]:
        t0 = time.perf_counter()
        msg = leg_digest(ctx, LegId.MAGNETAR)
        items = [(s.slhdsa_sk, msg) for s in self.signers]
        if self.slh_pool is not None:
            sigs = self.slh_pool.slh_sign(self.vset.slh_params, items)
        else:
            sigs = [slhdsa.sign(sk, m, self.vset.slh_params) for sk, m in items]
        t1 = time.perf_counter()
        field = magnetar.aggregate(self.vset, ctx, dict(enumerate(sigs)))
        t2 = time.perf_counter()
        magnetar.verify(self.vset, ctx, field)
        t3 = time.perf_counter()
        return field, {"sign": t1 - t0, "aggregate": t2 - t1, "verify": t3 - t2}

    def run_corona(self, ctx: CertContext) -> tuple[bytes, Timing]:
        t0 = time.perf_counter()
        if self.corona_pool is not None:
            commits = self.corona_pool.corona_round1(ctx, self.signers)
        else:
            sess = corona.session_of(ctx)
            party = {s.index: corona.CoronaSigner(s, sess) for s in self.signers}
            commits = {i: p.commitment for i, p in party.items()}
        t1 = time.perf_counter()
        chosen = corona.choose_signers(self.vset, list(commits))
        assert chosen is not None
        if self.corona_pool is not None:
            responses = self.corona_pool.corona_round2(ctx, chosen, commits)
        else:
            responses = {i: party[i].respond(ctx, chosen, commits) for i in chosen}
        t2 = time.perf_counter()
        field = corona.aggregate(self.vset, ctx, chosen, commits, responses)  # combine + check
        t3 = time.perf_counter()
        corona.verify(self.vset, ctx, field)
        t4 = time.perf_counter()
        return field, {
            "sign": t2 - t0,
            "round1": t1 - t0,
            "round2": t2 - t1,
            "aggregate": t3 - t2,
            "verify": t4 - t3,
        }


def main() -> None:
    cores = os.cpu_count() or 1
    t0 = time.perf_counter()
    vset, secrets = generate_validators(N, b"bench-consensus", slh_params=ParamSet.SHA2_128F)
    print(
        f"validators n={N}, threshold t={vset.threshold_weight}, cores={cores}, "
        f"keygen+deal {time.perf_counter() - t0:.2f} s"
    )
    b = Bench(vset, secrets)
    runners: dict[LegId, Callable[[CertContext], tuple[bytes, Timing]]] = {
        LegId.BLS: b.run_bls,
        LegId.PULSAR: b.run_pulsar,
        LegId.CORONA: b.run_corona,
        LegId.MAGNETAR: b.run_magnetar,
    }
    b.run_bls(b.ctx(99))  # warm imports and caches
    b.run_pulsar(b.ctx(99))

    # -- single process, no workers: the honest serial floor ---------------------------
    single: dict[LegId, float] = {}
    for leg, run in runners.items():
        s0 = time.perf_counter()
        run(b.ctx(100 + int(leg)))
        single[leg] = time.perf_counter() - s0
    single_total = sum(single.values())

    t0 = time.perf_counter()
    # one worker process per GIL-holding leg: the legs get the same resources in
    # the serial and the parallel run, so the ratio measures leg parallelism only
    b.corona_pool = SigningPool(1)
    b.slh_pool = SigningPool(1)
    print(f"signing workers: corona 1, slh-dsa 1 (started+warmed {time.perf_counter() - t0:.2f} s)")
    try:
        # -- leg-serial with workers -----------------------------------------------------
        serial: dict[LegId, float] = {}
        detail: dict[LegId, tuple[int, Timing]] = {}
        for leg, run in runners.items():
            s0 = time.perf_counter()
            field, timing = run(b.ctx(1))
            serial[leg] = time.perf_counter() - s0
            detail[leg] = (len(field), timing)
        serial_total = sum(serial.values())

        # -- leg-parallel: all four legs launched at once ------------------------------
        ctx = b.ctx(2)
        done: dict[LegId, float] = {}
        fields: dict[LegId, bytes] = {}
        with ThreadPoolExecutor(max_workers=4) as ex:
            start = time.perf_counter()

            def one(leg: LegId) -> None:
                fields[leg], _ = runners[leg](ctx)
                done[leg] = time.perf_counter() - start

            list(ex.map(one, list(LegId)))
            parallel = time.perf_counter() - start
    finally:
        b.corona_pool.close()
        b.slh_pool.close()

    cert = QuasarCert.empty(ctx)
    for leg, value in fields.items():
        cert = cert.with_field(leg, value)

    print()
    print(f"{'leg':9} {'sign (t shares)':>16} {'aggregate':>10} {'verify':>9} {'field bytes':>12}")
    for leg, (size, tm) in detail.items():
        extra = ""
        if leg is LegId.CORONA:
            extra = f"   (round1 {tm['round1'] * 1e3:.0f} ms + round2 {tm['round2'] * 1e3:.0f} ms)"
        print(
            f"{leg.label:9} {tm['sign'] * 1e3:13.1f} ms {tm['aggregate'] * 1e3:7.1f} ms "
            f"{tm['verify'] * 1e3:6.1f} ms {size:12,d}{extra}"
        )
    print(f"QuasarCert wire size, all four legs: {len(cert.encode()):,d} bytes")
    one192 = slhdsa.keygen(b"\x01" * 32, ParamSet.SHAKE_192S)[0]
    s0 = time.perf_counter()
    slhdsa.sign(one192, b"x" * 32, ParamSet.SHAKE_192S)
    print(
        f"conformance profile: one SLH-DSA-SHAKE-192s signature {time.perf_counter() - s0:.2f} s "
        f"(x{vset.threshold_weight} signers on their own machines)"
    )

    print()
    print("round, per leg (s):      " + "  ".join(f"{leg.label:>8}" for leg in LegId))
    print("  single-process serial  " + "  ".join(f"{single[leg]:8.3f}" for leg in LegId))
    print("  leg-serial (workers)   " + "  ".join(f"{serial[leg]:8.3f}" for leg in LegId))
    print("  leg-parallel done at   " + "  ".join(f"{done[leg]:8.3f}" for leg in LegId))
    print()
    print(f"single-process serial sum   {single_total:7.3f} s")
    print(f"leg-serial sum (workers)    {serial_total:7.3f} s")
    print(
        f"leg-parallel round wall     {parallel:7.3f} s   (max leg alone {max(serial.values()):.3f} s)"
    )
    print(f"ratio leg-serial / leg-parallel        {serial_total / parallel:5.2f}x")
    print(f"ratio single-process / leg-parallel    {single_total / parallel:5.2f}x")

    tracker = TierTracker(
        Variant.HYBRID, 0, CertPolicy(Mode.PQ_HEAVY, Variant.HYBRID, 60_000, None).timeout_ms
    )
    print()
    print("observed tier in the leg-parallel round (the cert never waits for the slowest leg):")
    for leg in sorted(done, key=lambda x: done[x]):
        tr = tracker.on_event(LegEvent(leg, round(done[leg] * 1000), EventKind.ARRIVED))
        if tr is not None:
            print(f"  t = {tr.at_ms:6d} ms  {leg.label:8} -> {tr.tier.value}")


if __name__ == "__main__":
    main()
