"""ZapDB benchmarks: snapshot cost vs state size, discard, commit, state root, speculation.

Run: ``.venv/bin/python bench/bench_zapdb.py`` (about a minute on 2 cores; ``--small``
skips the 1M-key store).  Every figure is measured in this run; medians of
repeated timings.  The speculation block is 1000 synthetic 500-byte immutable
tx buffers (slices of one ``bytes`` object) until the ZAP tx frames of
``zapstack.zap`` are wired in; the codec baseline decodes and re-encodes each
tx with msgspec (msgpack) once per branch, as a marshal-per-branch design would.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lmdb
import msgspec

from zapstack.zapdb import Txn, ZapDB
from zapstack.zapdb.smt import reference_root
from zapstack.zapdb.speculate import speculate

TX_SIZE = 500
BLOCK_TXS = 1000
WIDTH = 3


def median_time(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:9.2f} µs"


def build(path: Path, n: int, *, batch: int = 100_000) -> tuple[ZapDB, float]:
    """A store with n keys (sync off while loading); returns it and keys/s."""
    db = ZapDB.open(path, map_size=1 << 34, sync=False)
    rng = random.Random(n)
    t0 = time.perf_counter()
    for lo in range(0, n, batch):
        with db.begin() as txn:
            for i in range(lo, min(n, lo + batch)):
                txn.set(b"acct/%010d" % i, rng.randbytes(32))
            txn.commit()
    rate = n / (time.perf_counter() - t0)
    db.close()
    return ZapDB.open(path, map_size=1 << 34), rate


def snapshot_cost(db: ZapDB, n: int) -> tuple[float, float]:
    keys = [b"acct/%010d" % random.randrange(n) for _ in range(64)]

    def branch() -> None:
        for _ in keys:
            db.snapshot().discard()

    env = db._env  # raw LMDB: the cost of a brand-new read snapshot (after a commit)

    def fresh() -> None:
        for _ in keys:
            env.begin(write=False).abort()

    return median_time(branch, 15) / len(keys), median_time(fresh, 15) / len(keys)


def root_cost(db: ZapDB, n: int, changed: int = 1000) -> float:
    rng = random.Random(1)

    def one() -> None:
        txn = db.begin()
        for _ in range(changed):
            txn.set(b"acct/%010d" % rng.randrange(n), rng.randbytes(32))
        t0 = time.perf_counter()
        txn.root()
        samples.append(time.perf_counter() - t0)
        txn.discard()

    samples: list[float] = []
    for _ in range(5):
        one()
    return statistics.median(samples) / changed


class Tx(msgspec.Struct, frozen=True):
    """The codec baseline's tx shape (same bytes as the synthetic frame)."""

    sender: bytes
    nonce: int
    amount: int
    payload: bytes


def make_block(seed: int) -> tuple[bytes, list[memoryview], list[bytes]]:
    rng = random.Random(seed)
    parts = []
    for i in range(BLOCK_TXS):
        sender = b"acct/%010d" % rng.randrange(5000)
        head = sender + i.to_bytes(8, "big") + rng.randrange(100).to_bytes(8, "big")
        parts.append(head + rng.randbytes(TX_SIZE - len(head)))
    buf = b"".join(parts)
    view = memoryview(buf)
    txs = [view[i * TX_SIZE : (i + 1) * TX_SIZE] for i in range(BLOCK_TXS)]
    encoded = [
        msgspec.msgpack.encode(
            Tx(
                bytes(t[:15]),
                int.from_bytes(t[15:23], "big"),
                int.from_bytes(t[23:31], "big"),
                bytes(t[31:]),
            )
        )
        for t in txs
    ]
    return buf, txs, encoded


_HEAD = struct.Struct(">15sQQ")  # sender, nonce, amount: fixed offsets in the frame


def apply_shared(txn: Txn, txs: list[memoryview]) -> int:
    """Pointer share: read fields off the one buffer, store the tx slice itself."""
    unpack = _HEAD.unpack_from
    for tx in txs:
        sender, nonce, amount = unpack(tx)
        bal = txn.get(sender)
        prior = int.from_bytes(bal[:8], "big") if bal else 0
        txn.set(sender, (prior + amount).to_bytes(8, "big"))
        txn.set(b"tx/" + nonce.to_bytes(8, "big") + sender, tx)
    return len(txs)


_dec = msgspec.msgpack.Decoder(Tx)
_enc = msgspec.msgpack.Encoder()


def apply_codec(txn: Txn, raws: list[bytes]) -> int:
    """Codec round-trip per branch: decode each tx, re-encode it for storage."""
    for raw in raws:
        tx = _dec.decode(raw)
        bal = txn.get(tx.sender)
        prior = int.from_bytes(bal[:8], "big") if bal else 0
        txn.set(tx.sender, (prior + tx.amount).to_bytes(8, "big"))
        txn.set(b"tx/" + tx.nonce.to_bytes(8, "big") + tx.sender, _enc.encode(tx))
    return len(raws)


def speculation(db: ZapDB) -> None:
    blocks = [make_block(s) for s in range(WIDTH)]
    shared = [(i, b[1]) for i, b in enumerate(blocks)]
    codec = [(i, b[2]) for i, b in enumerate(blocks)]

    def run(
        cands: list[tuple[int, list[memoryview]]] | list[tuple[int, list[bytes]]],
        fn: Callable[[Txn, object], int],
    ) -> tuple[float, float]:
        t0 = time.perf_counter()
        spec = speculate(db, cands, fn, max_width=WIDTH)  # type: ignore[arg-type]
        while not all(spec.ready(i) for i in range(WIDTH)):
            time.sleep(0.0005)
        applied = time.perf_counter() - t0
        t1 = time.perf_counter()
        spec.decide(1)
        return applied, time.perf_counter() - t1

    ptr = [run(shared, apply_shared) for _ in range(5)]  # type: ignore[arg-type]
    cod = [run(codec, apply_codec) for _ in range(5)]  # type: ignore[arg-type]
    p_apply = statistics.median(a for a, _ in ptr)
    c_apply = statistics.median(a for a, _ in cod)
    p_commit = statistics.median(c for _, c in ptr)

    # serial baseline: no speculation, apply the winner only after the decision
    def serial() -> None:
        br = db.snapshot()
        apply_shared(br, blocks[1][1])
        br.commit()

    s_latency = median_time(serial, 5)
    print(
        f"  {WIDTH} branches x {BLOCK_TXS} txs ({TX_SIZE} B), pointer share : {p_apply * 1e3:8.2f} ms"
    )
    print(
        f"  {WIDTH} branches x {BLOCK_TXS} txs, codec round-trip/branch : {c_apply * 1e3:8.2f} ms"
    )
    print(f"  codec / pointer-share ratio                       : {c_apply / p_apply:8.2f} x")
    print(f"  decision->commit latency, speculative (commit only): {p_commit * 1e3:8.2f} ms")
    print(f"  decision->commit latency, serial (apply+commit)    : {s_latency * 1e3:8.2f} ms")
    print(f"  serial / speculative latency ratio                 : {s_latency / p_commit:8.2f} x")


def main() -> None:
    small = "--small" in sys.argv
    tmp = Path(tempfile.mkdtemp(prefix="bench-zapdb-"))
    try:
        print(f"ZapDB benchmark (CPython {sys.version.split()[0]}, {os.cpu_count()} cores)")
        sizes = [10_000] + ([] if small else [1_000_000])
        dbs = {}
        for n in sizes:
            dbs[n], rate = build(tmp / f"db{n}", n)
            print(f"built {n:>9,} keys: {rate:10,.0f} keys/s (bulk commits of 100k, sync off)")

        print("\n[snapshot cost] branch open + discard (shared head); fresh LMDB read txn")
        costs = {n: snapshot_cost(db, n) for n, db in dbs.items()}
        for n, (br, raw) in costs.items():
            print(f"  {n:>9,} keys: branch {us(br)}   fresh read txn {us(raw)}")
        if len(costs) == 2:
            a, b = costs[10_000], costs[1_000_000]
            print(
                f"  ratio 1M / 10k: branch {b[0] / a[0]:5.2f}   fresh read txn {b[1] / a[1]:5.2f}  (O(1) ~ 1)"
            )

        big = dbs[max(dbs)]
        print("\n[discard] branch with 10k dirty keys")
        disc, undo = [], []
        for _ in range(5):
            br = big.snapshot()
            br.begin_tx()
            for i in range(10_000):
                br.set(b"dirty/%06d" % i, b"v" * 32)
            diff = br.end_tx()
            t0 = time.perf_counter()
            br.rollback(diff)
            undo.append(time.perf_counter() - t0)
            for i in range(10_000):
                br.set(b"dirty/%06d" % i, b"v" * 32)
            t0 = time.perf_counter()
            br.discard()
            disc.append(time.perf_counter() - t0)
        d, u = statistics.median(disc), statistics.median(undo)
        small_disc = []
        for _ in range(50):
            br = big.snapshot()
            for i in range(10):
                br.set(b"dirty/%06d" % i, b"v" * 32)
            t0 = time.perf_counter()
            br.discard()
            small_disc.append(time.perf_counter() - t0)
        print(f"  discard()          : {us(d)}  (drops the overlay; CPython frees the dict here)")
        print(
            f"  discard() 10 dirty : {us(statistics.median(small_disc))}  (the O(1) part: release the snapshot)"
        )
        print(f"  rollback(diff) 10k : {us(u)}  (O(diff) undo-log replay, the serial unwind)")
        print(f"  rollback / discard : {u / d:8.1f} x")

        print("\n[commit throughput] sync on, 10k-key blocks of updates + inserts")
        path = tmp / "commit"
        db = ZapDB.open(path, map_size=1 << 32)
        rng = random.Random(3)
        rates = []
        for block in range(6):
            txn = db.begin()
            for _ in range(10_000):
                txn.set(
                    b"k%07d" % rng.randrange(50_000 if block else 10_000_000), rng.randbytes(32)
                )
            t0 = time.perf_counter()
            txn.commit()
            rates.append(10_000 / (time.perf_counter() - t0))
        print(
            f"  ZapDB commit (root + data + tree nodes): {statistics.median(rates):10,.0f} keys/s"
        )
        db.close()
        env = lmdb.open(str(tmp / "raw"), map_size=1 << 30)
        t0 = time.perf_counter()
        with env.begin(write=True) as raw:
            for _ in range(10_000):
                raw.put(b"k%07d" % rng.randrange(10_000_000), rng.randbytes(32))
        print(
            f"  native limit, raw LMDB puts + commit   : {10_000 / (time.perf_counter() - t0):10,.0f} keys/s"
        )
        env.close()

        print("\n[state root] incremental update of 1000 changed keys")
        for n, dbn in dbs.items():
            print(f"  {n:>9,} keys: {us(root_cost(dbn, n))} per changed key")
        with dbs[10_000].read() as view:
            state = dict(view.iterate())
        t0 = time.perf_counter()
        reference_root(state)
        full = time.perf_counter() - t0
        inc = root_cost(dbs[10_000], 10_000) * 1000
        print(
            f"  10k keys, 1000 changed: incremental {inc * 1e3:7.2f} ms vs full recompute "
            f"{full * 1e3:7.2f} ms ({full / inc:5.1f} x)"
        )

        print("\n[speculation] (synthetic 500-byte immutable tx buffers)")
        speculation(dbs[10_000])
        for dbn in dbs.values():
            dbn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
