"""Tx receive pipeline: admit throughput, pipelined vs serial, and the verify limit.

All in one process, through the sans-IO pipeline (``zapstack.mempool``) driven
by an in-memory transport loop: no sockets (the QUIC adapter is measured by
the transport's own bench).  Measured in this run:

* raw Ed25519 verify/s (``cryptography``), 1 thread and 2 threads: the limit;
* **pipelined**: 10k signed ~500-byte txs arrive on 64 interleaved streams per
  peer x PEERS peers, in ~MTU-sized pieces round-robin across streams; stages
  1-4 run per stream as bytes land; signatures are verified in batches on a
  2-thread pool (``cryptography`` releases the GIL) while the driver keeps
  parsing; stage 5 inserts into the mempool;
* the same stream pipeline with inline verification (one thread);
* **serial** baseline: one tx at a time -- parse, validate, verify, insert;
* **codec-style** baseline: decode each tx into an object (copying every
  field), re-marshal it to hash the transcript, verify, insert the copy;
* peak RSS of a receiver holding 12,800 in-flight partial buffers (a fresh
  subprocess, so the other phases do not pollute the high-water mark).

Run: ``.venv/bin/python bench/bench_txreceive.py``.
"""

from __future__ import annotations

import hashlib
import os
import resource
import struct
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import psutil
from cryptography.hazmat.primitives.asymmetric import ed25519

from zapstack.benchmarks.txadmit import verify_limit as native_verify_limit
from zapstack.errors import InvalidTx
from zapstack.mempool import (
    Action,
    Mempool,
    RejectStream,
    TxAdmitted,
    TxReceiver,
    TxRejected,
    VerifyRequest,
    WaitForCredit,
    verify_batch,
)
from zapstack.zap import DEFAULT_CHAIN_ID, Signer, SigScheme, build_call, parse_tx
from zapstack.zap.transcript import TX_DOMAIN

N_TXS = 10_000
PEERS = 4
STREAMS = 64
CHUNK = 1200  # ~ one QUIC packet of stream data
DATA = 315  # call data bytes -> 500-byte frames
SENDERS = 500
THREADS = 2
BATCH = 64
RSS_BUFFERS = 12_800


def make_txs(n: int, tag: bytes = b"") -> list[bytes]:
    signers = [
        Signer(SigScheme.ED25519, hashlib.sha256(b"bench-%s-%d" % (tag, i)).digest())
        for i in range(SENDERS)
    ]
    return [
        build_call(
            signers[i % SENDERS], bytes(32), bytes(DATA), 1 + (i * 7919) % 1000, i // SENDERS
        )
        for i in range(n)
    ]


def fresh_pool() -> Mempool:
    return Mempool(max_txs=2 * N_TXS)


# -- the limit ------------------------------------------------------------------
def verify_limit(txs: list[bytes]) -> tuple[float, float]:
    """Raw Ed25519 verify/s on 1 and on 2 threads (the shared benchmark helper)."""
    return native_verify_limit(txs, 1), native_verify_limit(txs, 2)


# -- baselines --------------------------------------------------------------------
def serial(txs: list[bytes]) -> tuple[float, int]:
    pool = fresh_pool()
    t0 = time.perf_counter()
    for raw in txs:
        view = parse_tx(raw, chain_id=DEFAULT_CHAIN_ID)  # stages 1-4 incl. signature
        pool.insert(view)  # stage 5
    return time.perf_counter() - t0, len(pool)


@dataclass
class DecodedCall:
    """What a codec hands out: an owned object with every field copied out."""

    kind: int
    scheme: int
    chain_id: int
    pubkey: bytes
    target: bytes
    fee: int
    nonce: int
    data: bytes
    signature: bytes


_HDR = struct.Struct("<4sBBBBIIHHB")
_U32 = struct.Struct("<I")


def codec_decode(raw: bytes) -> DecodedCall:
    _, kind, _, _, scheme, total, chain, nfields, sig_len, _ = _HDR.unpack_from(raw, 0)
    ends = [_U32.unpack_from(raw, 21 + 4 * i)[0] for i in range(nfields)]
    starts = [21 + 4 * nfields, *ends[:-1]]
    f = [bytes(raw[s:e]) for s, e in zip(starts, ends, strict=True)]
    return DecodedCall(
        kind, scheme, chain, f[0], f[1], int.from_bytes(f[2], "little"),
        int.from_bytes(f[3], "little"), f[4], bytes(raw[total - sig_len : total]),
    )  # fmt: skip


def codec_marshal(tx: DecodedCall) -> bytes:
    """Re-encode the signed region from the object (what a codec stack hashes)."""
    parts = [
        tx.pubkey,
        tx.target,
        tx.fee.to_bytes(8, "little"),
        tx.nonce.to_bytes(8, "little"),
        tx.data,
    ]
    pos, ends = 21 + 4 * len(parts), []
    for p in parts:
        pos += len(p)
        ends.append(pos)
    total = pos + len(tx.signature)
    hdr = _HDR.pack(
        b"\x7fZAP", tx.kind, 1, 1, tx.scheme, total, tx.chain_id, len(parts), len(tx.signature), 0
    )
    return b"".join([hdr, *(_U32.pack(e) for e in ends), *parts])


def codec_serial(txs: list[bytes]) -> tuple[float, int]:
    pool: dict[bytes, DecodedCall] = {}
    t0 = time.perf_counter()
    for raw in txs:
        tx = codec_decode(raw)
        digest = hashlib.sha256(TX_DOMAIN + codec_marshal(tx)).digest()
        ed25519.Ed25519PublicKey.from_public_bytes(tx.pubkey).verify(tx.signature, digest)
        if digest in pool:
            raise InvalidTx("duplicate", code=0)  # type: ignore[arg-type]
        pool[digest] = tx
    return time.perf_counter() - t0, len(pool)


# -- the pipeline -------------------------------------------------------------------
def pipelined(txs: list[bytes], *, threads: int) -> tuple[float, int, dict[str, int]]:
    """Drive ``PEERS`` peers x ``STREAMS`` concurrent streams through one receiver."""
    rx = TxReceiver(fresh_pool(), chain_id=DEFAULT_CHAIN_ID, defer_verification=threads > 0)
    queues = [deque(enumerate(txs[p::PEERS])) for p in range(PEERS)]
    peers = [b"peer-%d" % p for p in range(PEERS)]
    active: dict[tuple[bytes, int], list[object]] = {}  # key -> [raw, offset]
    verdicts = {"admitted": 0, "rejected": 0}
    batch: list[VerifyRequest] = []
    inflight: deque[tuple[list[VerifyRequest], Future[list[bool]]]] = deque()
    ex = ThreadPoolExecutor(threads) if threads else None

    def handle(actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, VerifyRequest):
                batch.append(a)
            elif isinstance(a, TxAdmitted):
                verdicts["admitted"] += 1
            elif isinstance(a, TxRejected | RejectStream):
                verdicts["rejected"] += 1
            elif isinstance(a, WaitForCredit):
                raise AssertionError("budget sized for the load: no waits expected")

    def flush(force: bool) -> None:
        if ex is not None and batch and (force or len(batch) >= BATCH):
            reqs = batch[:]
            batch.clear()
            inflight.append((reqs, ex.submit(verify_batch, [r.view for r in reqs])))
        while inflight and (force or inflight[0][1].done()):
            reqs, fut = inflight.popleft()
            for r, ok in zip(reqs, fut.result(), strict=True):
                handle(rx.verified(r.peer, r.stream_id, ok))

    t0 = time.perf_counter()
    while True:
        for p, q in enumerate(queues):  # top up each peer to STREAMS open streams
            open_now = sum(1 for k in active if k[0] == peers[p]) if q else STREAMS
            while q and open_now < STREAMS:
                i, raw = q.popleft()
                key = (peers[p], 4 * i)
                handle(rx.stream_opened(*key))
                active[key] = [raw, 0]
                open_now += 1
        if not active:
            break
        for key in list(active):  # one packet per stream, round-robin
            raw, off = active[key]
            assert isinstance(raw, bytes) and isinstance(off, int)
            if off < len(raw):
                handle(rx.data_received(*key, raw[off : off + CHUNK]))
                active[key][1] = off + CHUNK
            else:
                del active[key]
                handle(rx.stream_ended(*key))
        flush(False)
    flush(True)
    while rx.in_flight:
        flush(True)
    elapsed = time.perf_counter() - t0
    if ex is not None:
        ex.shutdown()
    return elapsed, len(rx.pool), verdicts


# -- peak RSS --------------------------------------------------------------------
def rss_child() -> None:
    """Open 12,800 streams (200 peers x 64), each holding all but its last byte."""
    txs = make_txs(RSS_BUFFERS, b"rss")
    proc = psutil.Process()
    rx = TxReceiver(Mempool(max_txs=2 * RSS_BUFFERS), chain_id=DEFAULT_CHAIN_ID)
    before = proc.memory_info().rss
    t0 = time.perf_counter()
    for i, raw in enumerate(txs):
        key = (b"peer-%d" % (i // STREAMS), 4 * (i % STREAMS))
        assert rx.stream_opened(*key) == []
        assert rx.data_received(*key, raw[:250]) == []
        assert rx.data_received(*key, raw[250:-1]) == []  # one byte short: in flight
    held = proc.memory_info().rss
    assert rx.in_flight == RSS_BUFFERS == rx.admission.buffers
    fill = time.perf_counter() - t0
    for i, raw in enumerate(txs):
        key = (b"peer-%d" % (i // STREAMS), 4 * (i % STREAMS))
        rx.data_received(*key, raw[-1:])
        rx.stream_ended(*key)
    assert len(rx.pool) == RSS_BUFFERS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"{before} {held} {peak} {rx.admission.max_bytes} {sum(len(t) for t in txs)} {fill:.3f}")


def mib(n: float) -> str:
    return f"{n / 2**20:7.1f} MiB"


def main() -> None:
    if "--rss-child" in sys.argv:
        rss_child()
        return
    print(f"tx receive pipeline bench: {N_TXS} txs, {PEERS} peers x {STREAMS} streams, "
          f"{os.cpu_count()} cores, verify threads {THREADS}")  # fmt: skip
    load = os.getloadavg()
    print(f"  load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          "(the cores are shared: a busy box flattens the thread-pool gain)")  # fmt: skip
    t0 = time.perf_counter()
    txs = make_txs(N_TXS)
    avg = sum(map(len, txs)) / len(txs)
    print(
        f"  built {len(txs)} signed Ed25519 call txs, avg {avg:.0f} B, in {time.perf_counter() - t0:.2f} s"
    )

    one, two = verify_limit(txs)
    print("\nlimit: raw Ed25519 verify (cryptography, keys pre-decoded)")
    print(f"  1 thread : {one:10,.0f} verify/s")
    print(f"  {THREADS} threads: {two:10,.0f} verify/s  (x{two / one:.2f})")

    runs: dict[str, float] = {}
    for name, fn in (
        ("serial (parse, validate, verify, insert; one tx at a time)", lambda: serial(txs)[:2]),
        ("codec-style serial (decode+copy, re-marshal, verify, insert)", lambda: codec_serial(txs)),
        ("pipelined, inline verify (1 thread)", lambda: pipelined(txs, threads=0)[:2]),
        (
            f"pipelined, verify on {THREADS}-thread pool",
            lambda: pipelined(txs, threads=THREADS)[:2],
        ),
    ):
        secs, held = fn()
        assert held == N_TXS, (name, held)
        runs[name] = N_TXS / secs
    print(f"\nadmit throughput ({N_TXS} txs, all admitted)")
    base = runs[next(iter(runs))]
    for name, rate in runs.items():
        print(f"  {name:62s} {rate:9,.0f} tx/s  x{rate / base:5.2f} vs serial  "
              f"{rate / one:5.1%} of 1-thread limit  {rate / two:5.1%} of {THREADS}-thread limit")  # fmt: skip
    best = list(runs.values())[-1]
    print(f"\n  ratio pipelined({THREADS} threads) / serial = x{best / base:.2f}")
    print(
        f"  ratio pipelined({THREADS} threads) / codec-style = x{best / list(runs.values())[1]:.2f}"
    )

    out = subprocess.run(
        [sys.executable, __file__, "--rss-child"], capture_output=True, text=True, check=True
    ).stdout.split()
    before, held, peak, budget, payload = (int(x) for x in out[:5])
    print(
        f"\nreceiver holding {RSS_BUFFERS} in-flight buffers (200 peers x 64 streams, ~{avg:.0f} B txs)"
    )
    print(f"  payload bytes in flight  {mib(payload)}  (byte budget {mib(budget)})")
    print(f"  RSS before streams       {mib(before)}")
    print(f"  RSS holding 12.8k        {mib(held)}  (+{mib(held - before).strip()}, "
          f"{(held - before) / RSS_BUFFERS:,.0f} B per stream)")  # fmt: skip
    print(f"  peak RSS (ru_maxrss)     {mib(peak)}  (after admitting all 12.8k)")
    print(f"  opened + filled 12.8k streams in {float(out[5]):.2f} s")


if __name__ == "__main__":
    main()
