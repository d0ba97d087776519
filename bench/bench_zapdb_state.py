"""State at store speed: ZapDB's authenticated paths next to raw LMDB on the same entries.

Run: ``.venv/bin/python bench/bench_zapdb_state.py [--small]`` (a few minutes on 2 cores;
``--small`` uses 100k instead of 1M keys for the large store and the bulk load).  Every
figure is measured in this run, ZapDB and raw LMDB in turns on the same entries (sync
off for both); medians.  Code: ``zapstack.benchmarks.statebench`` (also the
``state_commit`` row of ``zap bench``).  Prints the SHA-256 backend of the C
extension, or that the pure-Python fallback ran.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from zapstack.benchmarks import statebench
from zapstack.zapdb import batch


def main() -> None:
    big = 100_000 if "--small" in sys.argv else 1_000_000
    tmp = Path(tempfile.mkdtemp(prefix="bench-state-"))
    try:
        backend = "pure Python (no C extension)"
        if batch.FAST:
            from zapstack.zapdb import _smtfast

            backend = f"C extension, SHA-256 {_smtfast.backend()}"
        print(
            f"ZapDB state paths ({backend}; CPython {sys.version.split()[0]}, {os.cpu_count()} cores)"
        )

        print("\n[bulk commit] 100k fresh keys, 96-byte values, into an empty store")
        fast = statebench.bulk_commit(tmp, 100_000, 5)
        slow = statebench.bulk_commit(tmp, 100_000, 1, fast=False)
        raw = fast["raw_keys_s"]
        for label, v in (
            ("ZapDB commit incl. root", fast["commit_keys_s"]),
            ("ZapDB set + commit incl. root", fast["set_commit_keys_s"]),
            ("pure-Python tree, commit incl. root", slow["commit_keys_s"]),
            ("raw LMDB puts of the same entries", raw),
        ):
            print(f"  {label:<38}: {v:12,.0f} keys/s  ({v / raw * 100:5.1f}% of raw)")

        print("\n[incremental block] 1000 changed keys per block, after 3 warm-up blocks")
        inc = {n: statebench.incremental(tmp, n) for n in (10_000, big)}
        for n, f in inc.items():
            print(
                f"  {n:>9,} keys: root {f['root_us']:7.2f} µs/key, root + commit {f['commit_us']:7.2f} "
                f"µs/key, raw LMDB puts {f['raw_us']:6.2f} µs/key"
            )
        a, b = inc[10_000], inc[big]
        print(
            f"  ratio {big:,} / 10,000: root {b['root_us'] / a['root_us']:5.2f}x, "
            f"root + commit {b['commit_us'] / a['commit_us']:5.2f}x"
        )

        print(f"\n[bulk load] {big:,} keys, 32-byte values, into an empty store")
        load = statebench.bulk_load_seconds(tmp, big)
        print(
            f"  bulk_load {load['load_s']:6.2f} s ({big / load['load_s']:10,.0f} keys/s); "
            f"raw LMDB puts {load['raw_s']:6.2f} s ({load['raw_s'] / load['load_s'] * 100:5.1f}% of raw)"
        )

        print("\n[state sync] 100k keys x 96 B from a real block's state, in-process peers")
        sync = statebench.state_sync(tmp, 100_000, 3)
        for label, key in (("1 peer", "sync1_MBps"), ("3 peers", "sync3_MBps")):
            v = sync[key]
            print(
                f"  state sync, {label:<7}: {v:8.2f} MB/s  ({v / sync['raw_MBps'] * 100:5.1f}% of raw)"
            )
        print(
            f"  raw LMDB puts      : {sync['raw_MBps']:8.2f} MB/s  "
            f"({sync['state_MB']:.1f} MB of keys + values, chunks of depth {sync['chunk_depth']:.0f})"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
