"""State at store speed: ZapDB's authenticated paths next to raw LMDB on the same entries.

Run: ``.venv/bin/python bench/bench_zapdb_state.py [--small]`` (a few minutes on 2 cores;
``--small`` uses 100k instead of 1M keys for the large store and the bulk load).  Every
figure is measured in this run, ZapDB and raw LMDB in turns on the same entries (sync
off for both); medians.  Code: ``zapstack.benchmarks.statebench`` (also the
``state_commit`` row of ``zap bench``).  Prints the SHA-256 backend of the C
extension, or that the pure-Python fallback ran, and whether ZapDB's LMDB calls went
through the bridge (``zapstack.zapdb.lmdbfast``; ``ZAPSTACK_LMDB_BRIDGE=0`` turns it off,
to compare).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from zapstack.benchmarks import quicbulk, statebench
from zapstack.transport.driver import TransportConfig
from zapstack.zapdb import batch, lmdbfast


def main() -> None:
    big = 100_000 if "--small" in sys.argv else 1_000_000
    tmp = Path(tempfile.mkdtemp(prefix="bench-state-"))
    try:
        backend = "pure Python (no C extension)"
        if batch.FAST:
            from zapstack.zapdb import _smtfast

            backend = f"C extension, SHA-256 {_smtfast.backend()}"
        backend += ", LMDB bridge " + ("on" if lmdbfast.BRIDGED else "off")
        print(
            f"ZapDB state paths ({backend}; CPython {sys.version.split()[0]}, {os.cpu_count()} cores)"
        )

        load1 = os.getloadavg()[0]
        print("  (each figure: wall clock / CPU time of this process; on a shared box the CPU")
        print(f"   figure is the cost, wall adds the wait for a core; load {load1:.1f} at start)")

        print("\n[bulk commit] 100k fresh keys, 96-byte values, into an empty store")
        fast = statebench.bulk_commit(tmp, 100_000, 5)
        slow = statebench.bulk_commit(tmp, 100_000, 1, fast=False)
        for label, name, figs in (
            ("ZapDB commit incl. root", "commit", fast),
            ("ZapDB set + commit incl. root", "set_commit", fast),
            ("pure-Python tree, commit incl. root", "commit", slow),
            ("raw LMDB puts of the same entries", "raw", fast),
        ):
            w, c = figs[f"{name}_keys_s"], figs[f"{name}_keys_s_cpu"]
            rw, rc = fast["raw_keys_s"], fast["raw_keys_s_cpu"]
            print(
                f"  {label:<36}: {w:10,.0f} / {c:10,.0f} keys/s  "
                f"({w / rw * 100:5.1f}% / {c / rc * 100:5.1f}% of raw)"
            )
        print(
            f"  paired turns (median of raw/ZapDB per turn): commit incl. root "
            f"{fast['commit_pct_paired']:5.1f}% of raw, set + commit "
            f"{fast['set_commit_pct_paired']:5.1f}%"
        )

        print("\n[incremental block] 1000 changed keys per block, after 3 warm-up blocks")
        inc = {n: statebench.incremental(tmp, n) for n in (10_000, big)}
        for n, f in inc.items():
            print(
                f"  {n:>9,} keys: root {f['root_us']:7.2f} / {f['root_us_cpu']:6.2f} µs/key, "
                f"root + commit {f['commit_us']:7.2f} / {f['commit_us_cpu']:6.2f} µs/key, "
                f"raw LMDB puts {f['raw_us']:6.2f} / {f['raw_us_cpu']:5.2f} µs/key"
            )
            print(
                f"  {'':>9}       tree records rewritten {f['nodes_per_key']:5.2f} per changed key,"
                f" root {f['root_us_per_node']:5.3f} µs per record"
            )
            print(
                f"  {'':>9}       SHA-256 compressions the definition needs "
                f"{f['sha_blocks_per_key']:5.2f} per changed key, root "
                f"{f['root_ns_per_block']:4.0f} ns per compression"
            )
        a, b = inc[10_000], inc[big]
        print(
            f"  ratio {big:,} / 10,000: root {b['root_us'] / a['root_us']:5.2f}x / "
            f"{b['root_us_cpu'] / a['root_us_cpu']:5.2f}x, root + commit "
            f"{b['commit_us'] / a['commit_us']:5.2f}x / {b['commit_us_cpu'] / a['commit_us_cpu']:5.2f}x"
        )
        print(
            f"  the root definition's work grows {b['nodes_per_key'] / a['nodes_per_key']:4.2f}x "
            f"(records per changed key); root cost per record "
            f"{b['root_us_per_node'] / a['root_us_per_node']:4.2f}x"
        )
        print(
            f"  its least SHA-256 work grows "
            f"{b['sha_blocks_per_key'] / a['sha_blocks_per_key']:4.2f}x (compressions per "
            f"changed key): no implementation that keeps the roots can grow less, unless it "
            f"wastes work at 10k; root cost per compression "
            f"{b['root_ns_per_block'] / a['root_ns_per_block']:4.2f}x"
        )

        print(f"\n[bulk load] {big:,} keys, 32-byte values, into an empty store")
        ld = statebench.bulk_load_seconds(tmp, big)
        print(
            f"  bulk_load {ld['load_s']:6.2f} / {ld['load_s_cpu']:6.2f} s; raw LMDB puts "
            f"{ld['raw_s']:6.2f} / {ld['raw_s_cpu']:6.2f} s "
            f"({ld['raw_s'] / ld['load_s'] * 100:5.1f}% / {ld['raw_s_cpu'] / ld['load_s_cpu'] * 100:5.1f}% of raw)"
        )

        print("\n[state sync] 100k keys x 96 B from a real block's state")
        sync = statebench.state_sync(tmp, 100_000, 5, processes=True)
        rw, rc = sync["raw_MBps"], sync["raw_MBps_cpu"]
        for label, key in (
            ("1 peer, in-process", "sync1_MBps"),
            ("3 peers, in-process", "sync3_MBps"),
            ("client alone", "client_MBps"),
            ("1 peer process, QUIC", "quic1_MBps"),
            ("3 peer processes, QUIC", "quic3_MBps"),
        ):
            w, c = sync[key], sync[f"{key}_cpu"]
            print(
                f"  state sync, {label:<22}: {w:7.2f} / {c:7.2f} MB/s  "
                f"({w / rw * 100:5.1f}% / {c / rc * 100:5.1f}% of raw; "
                f"paired turns {sync[key.replace('_MBps', '_pct_paired')]:5.1f}%)"
            )
        print(
            f"  {'raw LMDB puts':<34}: {rw:7.2f} / {rc:7.2f} MB/s  "
            f"({sync['state_MB']:.1f} MB of keys + values, chunks of depth {sync['chunk_depth']:.0f})"
        )
        cores = os.cpu_count() or 1
        for name, label in (("quic1", "1 peer process"), ("quic3", "3 peer processes")):
            c, loop, p = (sync[f"{name}_{part}_ms"] for part in ("cpu", "loop_cpu", "peers_cpu"))
            print(
                f"  CPU of one sync, {label:<16}: client {c:4.0f} ms (its event-loop thread "
                f"{loop:4.0f}), peers {p:4.0f} ms: on {cores} cores at least "
                f"{(c + p) / cores:4.0f} ms of wall (median wall "
                f"{1000 * sync['state_MB'] / sync[f'{name}_MBps']:4.0f}); 25% of raw is "
                f"{4 * sync['raw_ms']:4.0f} ms"
            )
        replies, reply_mb = int(sync["replies"]), sync["reply_MB"]
        quic = statistics.median(
            quicbulk.measure(
                "qh3",
                limit=64,
                streams=replies,
                size=int(reply_mb * 1e6 / replies),
                config=TransportConfig(),
            )[0]
            for _ in range(3)
        )
        print(
            f"  QUIC alone, the same bytes: {replies} streams of {reply_mb * 1e3 / replies:.0f} kB "
            f"({reply_mb:.1f} MB) between two processes with the node's transport settings, "
            f"nothing else done: {quic * 1e3:4.0f} ms ({reply_mb / quic:5.1f} MB/s) of the "
            f"{4 * sync['raw_ms']:4.0f} ms that 25% of raw allows"
        )
        print("  (client alone: parse + verify + load + commit of replies served beforehand;")
        print("   in-process peers share this process's core; QUIC peers run in their own")
        print("   processes on the box's other core, the CPU figure is the client's alone)")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
