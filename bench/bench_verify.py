"""Verify pipeline: a 1000-tx block verified in parallel vs sequentially, per scheme.

Prints, for Ed25519 and ML-DSA-65 blocks: the sequential baseline, the thread
pool and the shared-memory process pool (median of several runs), their
ratios to the baseline, ratio / cores (efficiency), and the raw native verify
limit on the same cores in the same run (``cryptography`` verify calls on
pre-decoded keys, split over ``cores`` threads: no views, no digests).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from zapstack.verify import ProcessVerifier, ThreadVerifier, verify_sequential
from zapstack.zap import BlockView, Signer, SigScheme, build_block, build_transfer, parse_block

TXS = 1000
RUNS = 5


def make_block(scheme: SigScheme) -> BlockView:
    keys = [
        Signer(scheme, hashlib.sha256(b"bench/%d/%d" % (scheme, i)).digest()) for i in range(100)
    ]
    txs = [build_transfer(keys[i % 100], bytes(32), 1, 1, i // 100) for i in range(TXS)]
    prop = Signer(SigScheme.ED25519, bytes(32))
    raw = build_block(
        prop, height=1, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=txs
    )
    return parse_block(raw)


def median_s(fn: Callable[[], object]) -> float:
    fn()  # warm (key caches, pools)
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def native_limit(block: BlockView, cores: int) -> float:
    """Raw verifies/s: pre-decoded keys and bytes, ``cores`` threads."""
    loader = {
        SigScheme.ED25519: ed25519.Ed25519PublicKey.from_public_bytes,
        SigScheme.MLDSA65: mldsa.MLDSA65PublicKey.from_public_bytes,
    }
    work = []
    for tx in block.txs():
        work.append(
            (loader[SigScheme(tx.scheme)](bytes(tx.pubkey)), bytes(tx.signature), tx.digest)
        )
    chunks = [work[i::cores] for i in range(cores)]

    def run(chunk: list[tuple[object, bytes, bytes]]) -> None:
        for key, sig, digest in chunk:
            key.verify(sig, digest)  # type: ignore[attr-defined]

    with ThreadPoolExecutor(cores) as pool:
        secs = median_s(lambda: list(pool.map(run, chunks)))
    return len(work) / secs


def main() -> None:
    cores = os.cpu_count() or 1
    print(f"verify bench: {TXS}-tx blocks, {cores} cores, median of {RUNS}")
    threads = ThreadVerifier(cores)
    procs = ProcessVerifier(cores)
    try:
        for scheme in (SigScheme.ED25519, SigScheme.MLDSA65):
            block = make_block(scheme)
            assert verify_sequential(block).ok
            seq = median_s(lambda b=block: verify_sequential(b))
            thr = median_s(lambda b=block: threads.verify(b))
            prc = median_s(lambda b=block: procs.verify(b))
            limit = native_limit(block, cores)
            name = scheme.name
            print(f"\n[{name}] block {len(block.buffer)} bytes")
            print(f"  sequential      {seq * 1e3:8.1f} ms  {TXS / seq:9.0f} tx/s")
            for label, t in (("thread pool", thr), ("process pool", prc)):
                ratio = seq / t
                print(
                    f"  {label:<14} {t * 1e3:8.1f} ms  {TXS / t:9.0f} tx/s  "
                    f"ratio {ratio:4.2f}x  efficiency {ratio / cores:4.2f}"
                )
            print(
                f"  native limit    {TXS / limit * 1e3:8.1f} ms  {limit:9.0f} tx/s  ({cores} threads, raw verify)"
            )
            best = min(thr, prc)
            print(f"  best parallel reaches {TXS / best / limit:4.0%} of the native limit")
    finally:
        threads.close()
        procs.close()


if __name__ == "__main__":
    main()
