"""Ringtail (Corona leg) at 27-of-40: keygen, round 1, round 2, combine, verify, sizes.

Also round 2 for all 27 signers across a pre-warmed 2-process pool (each
worker gets one contiguous range of parties; the 27 commitments, ~19 MB, sit
in one shared_memory block the workers read in place) against the same work
serially, with the ratio, measured in the same run.  The parallel responses must be
byte-identical to the serial ones (round 1 is deterministic in its inputs,
so both runs start from equal sessions).

Run: .venv/bin/python bench/bench_ringtail.py
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import shared_memory

# One BLAS thread per process: the pool already uses every core, and OpenBLAS's
# own threads (LAPACK in the round-2 spread check) would oversubscribe them.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from zapstack.crypto.ringtail import (
    PARAMS,
    GroupPublicKey,
    KeyShare,
    Signature,
    SignerSession,
    combine,
    deal,
    round1,
    round2,
    verify,
)
from zapstack.crypto.ringtail.keys import expanded

N, T = 40, 27
SEED = b"bench-ringtail-dealer-seed-00001"
MESSAGE = bytes(range(32))
SID = b"bench/height=1/round=0"
WORKERS = 2


def _round1_all(shares: Sequence[KeyShare]) -> tuple[dict[int, SignerSession], dict[int, bytes]]:
    states: dict[int, SignerSession] = {}
    commitments: dict[int, bytes] = {}
    for share in shares:
        seed = share.index.to_bytes(2, "big") * 16
        states[share.index], commitments[share.index] = round1(share, SID, seed)
    return states, commitments


def _warm(pk_bytes: bytes) -> int:
    expanded(GroupPublicKey.from_bytes(pk_bytes))
    time.sleep(0.2)  # hold this worker so the next warm-up task starts another
    return os.getpid()


def _round2_range(
    states: list[SignerSession], signers: list[int], shm_name: str, size: int
) -> tuple[list[bytes], float]:
    t0 = time.perf_counter()
    shm = shared_memory.SharedMemory(name=shm_name)
    try:
        view = shm.buf
        assert view is not None
        commitments = {i: view[k * size : (k + 1) * size] for k, i in enumerate(signers)}
        out = [round2(st, MESSAGE, signers, commitments) for st in states]
        del commitments, view
        return out, time.perf_counter() - t0
    finally:
        shm.close()


def main() -> None:
    print(f"Ringtail {T}-of-{N}  (q = 2^48 + 18945, N = 256, A in R_q^8x7, dbar = {PARAMS.dbar})")
    t0 = time.perf_counter()
    pk, shares = deal(N, T, SEED)
    t_deal = time.perf_counter() - t0
    expanded(pk)
    signer_shares = shares[:T]
    signers = [s.index for s in signer_shares]

    t0 = time.perf_counter()
    states, commitments = _round1_all(signer_shares)
    t_r1 = time.perf_counter() - t0

    t0 = time.perf_counter()
    responses = {i: round2(states[i], MESSAGE, signers, commitments) for i in signers}
    t_r2 = time.perf_counter() - t0

    t0 = time.perf_counter()
    sig = combine(pk, MESSAGE, SID, signers, commitments, responses)
    t_comb = time.perf_counter() - t0

    verify_times = []
    for _ in range(20):
        t0 = time.perf_counter()
        ok = verify(pk, MESSAGE, sig)
        verify_times.append(time.perf_counter() - t0)
        assert ok
    t_ver = statistics.median(verify_times)

    print(f"  keygen (dealer, {N} shares)       {t_deal * 1e3:9.1f} ms")
    print(
        f"  round 1, {T} parties serial        {t_r1 * 1e3:9.1f} ms  ({t_r1 / T * 1e3:.1f} ms/party)"
    )
    print(
        f"  round 2, {T} parties serial        {t_r2 * 1e3:9.1f} ms  ({t_r2 / T * 1e3:.1f} ms/party)"
    )
    print(f"  combine                          {t_comb * 1e3:9.1f} ms")
    print(f"  verify (median of 20)            {t_ver * 1e3:9.2f} ms")
    print(f"  protocol CPU total (r1+r2+comb)  {(t_r1 + t_r2 + t_comb):9.2f} s")
    print(f"  signature                        {len(sig):9d} bytes ({len(sig) / 1000:.2f} KB)")
    print(f"  group public key                 {len(pk.to_bytes()):9d} bytes")
    print(f"  round-1 commitment / party       {len(commitments[1]):9d} bytes")
    print(f"  round-2 response / party         {len(responses[1]):9d} bytes")
    print(f"  key share                        {len(shares[0].to_bytes()):9d} bytes")
    assert len(sig) == Signature.encoded_len()

    # Round 2, serial vs a 2-process pool, from identical round-1 sessions.
    serial_states, _ = _round1_all(signer_shares)
    t0 = time.perf_counter()
    serial = [round2(serial_states[i], MESSAGE, signers, commitments) for i in signers]
    t_serial = time.perf_counter() - t0

    pool_states, pool_commitments = _round1_all(signer_shares)
    assert pool_commitments == commitments
    ordered = [pool_states[i] for i in signers]
    half = (len(ordered) + 1) // 2
    ranges = [ordered[:half], ordered[half:]]
    size = len(commitments[signers[0]])
    shm = shared_memory.SharedMemory(create=True, size=size * len(signers))
    try:
        buf = shm.buf
        assert buf is not None
        for k, i in enumerate(signers):
            buf[k * size : (k + 1) * size] = commitments[i]
        del buf
        with ProcessPoolExecutor(max_workers=WORKERS) as pool:
            pids = set(pool.map(_warm, [pk.to_bytes()] * (2 * WORKERS)))
            t0 = time.perf_counter()
            futures = [pool.submit(_round2_range, r, signers, shm.name, size) for r in ranges]
            results = [f.result() for f in futures]
            t_parallel = time.perf_counter() - t0
        parallel = [resp for chunk, _ in results for resp in chunk]
        worker_ms = " + ".join(f"{busy * 1e3:.0f}" for _, busy in results)
    finally:
        shm.close()
        shm.unlink()
    assert parallel == serial, "pool responses differ from the serial ones"
    assert serial == [responses[i] for i in signers]
    cores = os.cpu_count()
    print(f"  round 2 serial (all {T})            {t_serial * 1e3:9.1f} ms")
    print(
        f"  round 2 pool ({len(pids)} procs, {cores} cores)   {t_parallel * 1e3:9.1f} ms"
        f"  (ratio serial/pool = {t_serial / t_parallel:.2f}x, byte-identical)"
    )
    print(
        f"  pool workers' own wall time       {worker_ms} ms  (load avg {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
