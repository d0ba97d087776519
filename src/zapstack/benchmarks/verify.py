"""Row "Block verify": sequential signature verify vs the parallel verify pipeline.

One real signed block of ``n`` Ed25519 transfers (``zapstack.zap``), verified
by :mod:`zapstack.verify` in this run, median of ``repeat`` runs each:

* **serial**: :func:`~zapstack.verify.verify_sequential` -- every tx view's
  signature one after another;
* **pipelined**: width-``n`` parallel verify over the one immutable block
  buffer -- the better of :class:`~zapstack.verify.ThreadVerifier` (threads:
  libsodium releases the GIL) and
  :class:`~zapstack.verify.ProcessVerifier` (block in shared memory), each with
  one worker per core; both figures are kept in ``extras``;
* **native limit**: raw libsodium (PyNaCl) verifies -- the node's strict
  Ed25519 verifier -- on prepared inputs split over one thread per core (no
  views, no digests).

Contenders are timed in turns.  On 2 cores the parallel win is bounded by
~2x; the spec's ~64x is width 1000 on 16 cores.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from nacl.bindings import crypto_sign_open

from zapstack.benchmarks.result import RowResult, cores, interleaved, median_time, time_ratio
from zapstack.verify import ProcessVerifier, ThreadVerifier, verify_sequential
from zapstack.zap import (
    BlockView,
    Signer,
    SigScheme,
    TxView,
    build_block,
    build_transfer,
    parse_block,
)

__all__ = ["make_block", "native_limit_s", "run"]


def make_block(n: int, scheme: SigScheme = SigScheme.ED25519) -> BlockView:
    """A valid signed block of ``n`` transfers from 100 senders."""
    keys = [Signer(scheme, hashlib.sha256(b"perf-verify/%d" % i).digest()) for i in range(100)]
    txs = [build_transfer(keys[i % 100], bytes(32), 1, 1, i // 100) for i in range(n)]
    proposer = Signer(SigScheme.ED25519, bytes(32))
    raw = build_block(
        proposer, height=1, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=txs
    )
    return parse_block(raw)


RawWork = list[tuple[bytes, bytes]]
"""``(signature || digest, public key)`` per tx: libsodium's input, prepared once."""


def raw_work(txs: Iterable[TxView]) -> RawWork:
    """The txs' signatures as the node's Ed25519 verifier (libsodium, strict) takes them."""
    return [(bytes(t.signature) + t.digest, bytes(t.pubkey)) for t in txs]


def raw_verify(chunk: RawWork) -> None:
    """Verify ``chunk`` with the library call alone (the native limit)."""
    for signed, pk in chunk:
        crypto_sign_open(signed, pk)


def native_limit_s(block: BlockView, threads: int, repeat: int) -> float:
    """Median seconds for raw Ed25519 verifies of the block's txs on ``threads`` threads."""
    work = raw_work(block.txs())
    chunks = [work[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return median_time(lambda: list(pool.map(raw_verify, chunks)), repeat)


def run(n: int = 1000, *, repeat: int = 5) -> RowResult:
    """Measure the row on one ``n``-tx block."""
    start = time.perf_counter()
    width = cores()
    block = make_block(n)
    if not verify_sequential(block).ok:
        raise AssertionError("bench block does not verify")
    threads = ThreadVerifier(width)
    procs = ProcessVerifier(width)
    try:
        contenders: dict[str, Callable[[], object]] = {
            "serial": lambda: verify_sequential(block),
            "threads": lambda: threads.verify(block),
            "processes": lambda: procs.verify(block),
        }
        for fn in contenders.values():
            fn()  # warm: key caches, pools
        secs = interleaved(contenders, repeat)
        serial, thread_s, proc_s = secs["serial"], secs["threads"], secs["processes"]
    finally:
        threads.close()
        procs.close()
    limit = native_limit_s(block, width, repeat)
    best = min(thread_s, proc_s)
    which = "threads" if thread_s <= proc_s else "processes"
    return RowResult(
        key="block_verify",
        op=f"Block verify ({n:,} txs)",
        serial_label="sequential sig verify",
        pipelined_label=f"width-{n} parallel verify, {width} {which}",
        serial=serial * 1e3,
        pipelined=best * 1e3,
        unit="ms",
        higher_is_better=False,
        ratio=time_ratio(best, serial),
        spec_win="~64x on 16 cores",
        native_limit=limit * 1e3,
        native_label=f"raw Ed25519 verify, {width} threads",
        notes=f"bounded by the {width} cores here",
        extras={
            "thread_pool_ms": thread_s * 1e3,
            "process_pool_ms": proc_s * 1e3,
            "efficiency_per_core": time_ratio(best, serial) / width,
        },
        seconds=time.perf_counter() - start,
    )
