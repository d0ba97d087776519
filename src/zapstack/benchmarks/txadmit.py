"""Row "Tx admit": sequential parse + validate vs the 5-stage x 64-stream pipeline.

In one process, through the sans-IO receive pipeline of
:mod:`zapstack.mempool` driven by an in-memory loop (no sockets: this row
measures the pipeline, not QUIC; ``bench/bench_txadmit_quic.py`` measures the
same pipeline behind a real QUIC endpoint).  On the same ``n`` signed
Ed25519 call txs (~500 B), measured in this run:

* **serial**: one tx at a time -- :func:`~zapstack.zap.parse_tx` (stages 1-4,
  signature included), then :meth:`Mempool.insert` (stage 5);
* **pipelined**: ``peers`` peers x ``streams`` concurrent streams; each tx
  arrives in ~MTU pieces round-robin across the open streams, stages 1-4 run
  per stream as bytes land, signatures are verified in batches on a
  ``threads``-thread pool (libsodium releases the GIL) while the
  driver keeps parsing, stage 5 inserts;
* **native limit**: raw Ed25519 verifies/s (libsodium, the node's verifier) on
  ``threads`` threads with inputs prepared -- the ceiling of any admit pipeline on this box.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from zapstack.benchmarks.result import RowResult, cores, interleaved, rate_ratio
from zapstack.benchmarks.verify import raw_verify, raw_work
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

__all__ = ["make_txs", "run", "run_pipelined", "run_serial", "verify_limit"]

CHUNK = 1200
"""Bytes per delivery: about one QUIC packet of stream data."""
DATA = 315
"""Call data bytes: gives ~500-byte tx frames."""
SENDERS = 500
"""Distinct signing keys (the mempool's per-sender nonce chains stay short)."""
BATCH = 64
"""Signatures handed to the verify pool at once."""


def make_txs(n: int) -> list[bytes]:
    """``n`` signed Ed25519 call tx frames with distinct (sender, nonce)."""
    signers = [
        Signer(SigScheme.ED25519, hashlib.sha256(b"perf-admit-%d" % i).digest())
        for i in range(min(n, SENDERS))
    ]
    k = len(signers)
    return [
        build_call(signers[i % k], bytes(32), bytes(DATA), 1 + (i * 7919) % 1000, i // k)
        for i in range(n)
    ]


def verify_limit(txs: list[bytes], threads: int) -> float:
    """Raw Ed25519 verify/s on ``threads`` threads (the node's verifier, inputs prepared)."""
    items = raw_work(parse_tx(raw, verify_signatures=False) for raw in txs)
    with ThreadPoolExecutor(threads) as ex:
        t0 = time.perf_counter()
        list(ex.map(raw_verify, [items[i::threads] for i in range(threads)]))
        return len(items) / (time.perf_counter() - t0)


def run_serial(txs: list[bytes]) -> float:
    """Seconds to admit ``txs`` one at a time (parse+validate+verify, then insert)."""
    pool = Mempool(max_txs=2 * len(txs))
    t0 = time.perf_counter()
    for raw in txs:
        pool.insert(parse_tx(raw, chain_id=DEFAULT_CHAIN_ID))
    elapsed = time.perf_counter() - t0
    if len(pool) != len(txs):
        raise AssertionError(f"serial admitted {len(pool)} of {len(txs)}")
    return elapsed


class _Pipeline:
    """One pipelined admit run: ``peers`` x ``streams`` open streams fed round-robin
    into a :class:`TxReceiver`, signatures verified in batches on ``ex``."""

    def __init__(self, txs: list[bytes], peers: int, streams: int, ex: ThreadPoolExecutor) -> None:
        self.rx = TxReceiver(
            Mempool(max_txs=2 * len(txs)), chain_id=DEFAULT_CHAIN_ID, defer_verification=True
        )
        self.queues = [deque(enumerate(txs[p::peers])) for p in range(peers)]
        self.names = [b"peer-%d" % p for p in range(peers)]
        self.streams = streams
        self.ex = ex
        self.open_per_peer = [0] * peers
        self.active: dict[tuple[int, int], tuple[bytes, int]] = {}  # (peer, sid) -> raw, offset
        self.batch: list[VerifyRequest] = []
        self.inflight: deque[tuple[list[VerifyRequest], Future[list[bool]]]] = deque()
        self.admitted = 0

    def handle(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, VerifyRequest):
                self.batch.append(a)
            elif isinstance(a, TxAdmitted):
                self.admitted += 1
            elif isinstance(a, TxRejected | RejectStream | WaitForCredit):
                raise AssertionError(f"unexpected {a!r}: the load is valid and within budget")

    def flush(self, force: bool) -> None:
        """Hand a full (or, forced, any) batch to the pool; apply finished verdicts."""
        batch, inflight = self.batch, self.inflight
        if batch and (force or len(batch) >= BATCH):
            reqs = batch[:]
            batch.clear()
            inflight.append((reqs, self.ex.submit(verify_batch, [r.view for r in reqs])))
        while inflight and (force or inflight[0][1].done()):
            reqs, fut = inflight.popleft()
            for r, ok in zip(reqs, fut.result(), strict=True):
                self.handle(self.rx.verified(r.peer, r.stream_id, ok))

    def top_up(self) -> None:
        """Open streams until each peer has ``streams`` open (or has no tx left)."""
        for p, q in enumerate(self.queues):
            while q and self.open_per_peer[p] < self.streams:
                i, raw = q.popleft()
                self.handle(self.rx.stream_opened(self.names[p], 4 * i))
                self.active[(p, 4 * i)] = (raw, 0)
                self.open_per_peer[p] += 1

    def deliver(self) -> None:
        """One packet per open stream, round-robin; end the streams that are done."""
        active, rx, names = self.active, self.rx, self.names
        for key in list(active):
            raw, off = active[key]
            p, sid = key
            if off < len(raw):
                self.handle(rx.data_received(names[p], sid, raw[off : off + CHUNK]))
                active[key] = (raw, off + CHUNK)
            else:
                del active[key]
                self.open_per_peer[p] -= 1
                self.handle(rx.stream_ended(names[p], sid))

    def run(self) -> None:
        """Feed every tx, then wait for every signature verdict."""
        while True:
            self.top_up()
            if not self.active:
                break
            self.deliver()
            self.flush(False)
        while self.rx.in_flight:
            self.flush(True)


def run_pipelined(txs: list[bytes], *, peers: int, streams: int, threads: int) -> float:
    """Seconds to admit ``txs`` over ``peers`` x ``streams`` concurrent streams."""
    with ThreadPoolExecutor(threads) as ex:
        pipe = _Pipeline(txs, peers, streams, ex)
        t0 = time.perf_counter()
        pipe.run()
        elapsed = time.perf_counter() - t0
    if pipe.admitted != len(txs) or len(pipe.rx.pool) != len(txs):
        raise AssertionError(f"pipelined admitted {pipe.admitted} of {len(txs)}")
    return elapsed


def run(
    n: int = 10_000, *, peers: int = 4, streams: int = 64, threads: int = 0, repeat: int = 3
) -> RowResult:
    """Measure the row on ``n`` txs (median of ``repeat`` interleaved runs each).

    ``threads`` 0 means one verify thread per core.
    """
    start = time.perf_counter()
    threads = threads or cores()
    txs = make_txs(n)
    run_serial(txs[: min(n, 200)])  # warm imports and key caches for both paths
    secs = interleaved(
        {
            "serial": lambda: run_serial(txs),
            "pipelined": lambda: run_pipelined(txs, peers=peers, streams=streams, threads=threads),
        },
        repeat,
    )
    serial, pipelined = n / secs["serial"], n / secs["pipelined"]
    limit = verify_limit(txs, threads)
    return RowResult(
        key="tx_admit",
        op=f"Tx admit ({n:,} txs)",
        serial_label="sequential parse + validate + verify + insert",
        pipelined_label=(
            f"5 stages x {streams} streams x {peers} peers, verify on {threads} threads"
        ),
        serial=serial,
        pipelined=pipelined,
        unit="tx/s",
        higher_is_better=True,
        ratio=rate_ratio(pipelined, serial),
        spec_win="~50x",
        native_limit=limit,
        native_label=f"raw Ed25519 verify, {threads} threads",
        notes="in-memory sans-IO pipeline (no sockets); signature verify bounds both paths",
        extras={"pipelined_pct_of_limit": 100 * pipelined / limit},
        seconds=time.perf_counter() - start,
    )
