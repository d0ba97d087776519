"""The verify pipeline's parallel phase: every tx signature of a block, concurrently.

Theory of operation
-------------------
Width = the block's tx count.  The read set is the one immutable block buffer
(a validated :class:`~zapstack.zap.BlockView`); the write set is empty.  The
txs are cut into contiguous index ranges, one task per range (a task per tx
would cost more in hand-off than an Ed25519 verify); each task verifies its
txs' signatures over their transcript digests and returns a verdict per tx.
After the join the verdicts are put back in block order:
:class:`VerdictSlice`, whose ``rejected`` collects the failed txs.

Two executors, chosen by measurement (``bench/bench_verify.py``):

* :class:`ThreadVerifier` -- a persistent thread pool.  ``cryptography``
  releases the GIL inside Ed25519 and ML-DSA-65 verification, and hashlib does
  for the large ML-DSA transcripts, so threads scale on the crypto itself.
  This is the default.
* :class:`ProcessVerifier` (``zapstack.verify.procpool``) -- a pre-warmed
  process pool; the block is placed once in ``multiprocessing.shared_memory``
  and each worker gets a range of tx offsets, so nothing of the payload is
  pickled.  Useful where Python-level per-tx work dominates.

Structure, schema, offset bounds and the tx chain ids were already checked
by the block's ingress (``parse_block``), once, over the same buffer; what is
left to the parallel phase is the signatures.

Verify once per node: a :class:`~zapstack.verify.sigcache.VerifiedCache`
given to :class:`ThreadVerifier` (filled at admission and gossip) lets a
range skip the txs whose (id, signature) pair already verified on this node
and records the ones it verifies; the verdicts are the same as
:func:`verify_sequential`'s (the readable reference, which never uses a cache).

Unwind: verification is a pure function, so its unwind is *drop the verdict*
(:meth:`PendingVerify.drop`): O(0) -- it does not wait for running tasks,
cancels the queued ones and discards whatever arrives; idempotent, callable
from any thread, in any state.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from zapstack.errors import InvalidBlock, LocalProtocolError, WireCode
from zapstack.verify.sigcache import VerifiedCache, cache_key
from zapstack.zap.sigschemes import verify_signature
from zapstack.zap.views import BlockView, TxView

__all__ = [
    "MIN_VIEWS_PER_TASK",
    "PendingVerify",
    "ThreadVerifier",
    "TxVerdict",
    "VerdictSlice",
    "Verifier",
    "split_ranges",
    "verify_range",
    "verify_range_cached",
    "verify_sequential",
    "verify_views",
]


@dataclass(frozen=True, slots=True)
class TxVerdict:
    """The parallel phase's verdict on one tx of a block."""

    index: int
    """Position of the tx in the block."""
    tx_id: bytes
    """The tx's id (its transcript digest)."""
    ok: bool
    """True iff its signature verified."""
    code: WireCode
    """``NO_ERROR`` or the reason it was rejected (``BAD_SIGNATURE``)."""


@dataclass(frozen=True, slots=True)
class VerdictSlice:
    """Every tx's verdict, in block order (the join of the parallel phase)."""

    block_id: bytes
    """sha256 of the block the verdicts are about."""
    verdicts: tuple[TxVerdict, ...]
    """One verdict per tx, ``verdicts[i].index == i``."""

    @property
    def rejected(self) -> tuple[TxVerdict, ...]:
        """The failed txs, in block order (collected after the join)."""
        return tuple(v for v in self.verdicts if not v.ok)

    @property
    def ok(self) -> bool:
        """True iff every tx verified."""
        return all(v.ok for v in self.verdicts)

    def check(self) -> None:
        """Raise :class:`InvalidBlock` naming the first rejected tx, if any."""
        for v in self.verdicts:
            if not v.ok:
                raise InvalidBlock(
                    f"tx {v.index} ({v.tx_id.hex()[:16]}) failed verification",
                    code=v.code,
                    tx_index=v.index,
                )


def verdict_of(index: int, tx: TxView) -> TxVerdict:
    """Verify one tx's signature over its transcript digest."""
    digest = tx.digest
    ok = verify_signature(tx.scheme, tx.pubkey, digest, tx.signature)
    return TxVerdict(index, digest, ok, WireCode.NO_ERROR if ok else WireCode.BAD_SIGNATURE)


def verify_range(block: BlockView, lo: int, hi: int) -> list[TxVerdict]:
    """Verdicts for txs ``lo..hi-1`` of ``block`` (one task's work)."""
    return [verdict_of(i, block.tx(i)) for i in range(lo, hi)]


def verify_range_cached(
    block: BlockView, lo: int, hi: int, cache: VerifiedCache
) -> list[TxVerdict]:
    """:func:`verify_range` that skips pairs in ``cache`` and records new successes."""
    out: list[TxVerdict] = []
    for i in range(lo, hi):
        tx = block.tx(i)
        key = cache_key(tx)
        if cache.has_key(key):
            out.append(TxVerdict(i, tx.digest, True, WireCode.NO_ERROR))
            continue
        verdict = verdict_of(i, tx)
        if verdict.ok:
            cache.add_key(key)
        out.append(verdict)
    return out


MIN_VIEWS_PER_TASK = 32
"""Fewest tx views one pool task checks (a hand-off costs about as much as a few verifies)."""


def verify_views(views: Sequence[TxView], cache: VerifiedCache | None = None) -> list[bool]:
    """One verdict per tx view, in order (a batch of admission or gossip checks).

    With ``cache``: a pair already verified here is not checked again, and
    every pair that verifies is recorded (block verify then skips it).
    """
    out: list[bool] = []
    for tx in views:
        key = cache_key(tx) if cache is not None else b""
        if cache is not None and cache.has_key(key):
            out.append(True)
            continue
        ok = verify_signature(tx.scheme, tx.pubkey, tx.digest, tx.signature)
        if ok and cache is not None:
            cache.add_key(key)
        out.append(ok)
    return out


def verify_sequential(block: BlockView) -> VerdictSlice:
    """The readable reference: every tx in order on the calling thread."""
    return VerdictSlice(block.block_id, tuple(verify_range(block, 0, block.tx_count)))


def split_ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """Cut ``range(n)`` into at most ``parts`` contiguous, near-equal ranges."""
    parts = max(1, min(parts, n))
    step, extra = divmod(n, parts)
    out: list[tuple[int, int]] = []
    lo = 0
    for p in range(parts):
        hi = lo + step + (1 if p < extra else 0)
        if hi > lo:
            out.append((lo, hi))
        lo = hi
    return out


class PendingVerify:
    """An in-flight parallel verification of one block: join it or drop it."""

    __slots__ = ("_block_id", "_cleanup", "_dropped", "_futures", "_lock", "_n", "resource")

    def __init__(
        self,
        block_id: bytes,
        n: int,
        futures: Sequence[Future[list[TxVerdict]]],
        cleanup: Callable[[], None] | None = None,
        resource: str = "",
    ) -> None:
        self._block_id = block_id
        self._n = n
        self._futures = list(futures)
        self._cleanup = cleanup
        self._dropped = False
        self._lock = threading.Lock()
        self.resource = resource
        """Name of what ``cleanup`` releases (the shared-memory segment), or empty."""

    @property
    def dropped(self) -> bool:
        """True once :meth:`drop` was called."""
        return self._dropped

    def result(self) -> VerdictSlice:
        """Join: wait for every range and return the verdicts in block order."""
        if self._dropped:
            raise LocalProtocolError("result() of a dropped verification")
        out: list[TxVerdict | None] = [None] * self._n
        try:
            for fut in self._futures:
                for v in fut.result():
                    out[v.index] = v
        finally:
            self._release()
        verdicts = tuple(v for v in out if v is not None)
        if len(verdicts) != self._n:  # a broken internal invariant, not bad input
            raise AssertionError("a verify range lost verdicts")
        return VerdictSlice(self._block_id, verdicts)

    def drop(self) -> None:
        """Drop the verdict: cancel queued ranges, ignore running ones.  O(0), idempotent."""
        self._dropped = True
        for fut in self._futures:
            fut.cancel()
        self._release()

    def _release(self) -> None:
        with self._lock:
            cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup()


class Verifier(Protocol):
    """Anything that runs the parallel phase (thread pool, process pool)."""

    def submit(self, block: BlockView) -> PendingVerify:
        """Start verifying every tx of ``block``."""
        ...

    def verify(self, block: BlockView) -> VerdictSlice:
        """``submit(block).result()``."""
        ...

    def close(self) -> None:
        """Release the workers (idempotent)."""
        ...


class ThreadVerifier:
    """The parallel phase on a persistent thread pool (GIL released in the crypto)."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        ranges_per_worker: int = 2,
        cache: VerifiedCache | None = None,
    ) -> None:
        self.workers = workers or os.cpu_count() or 1
        """Threads in the pool."""
        self.ranges_per_worker = ranges_per_worker
        """Tasks per thread per block (a little slack evens out uneven ranges)."""
        self.cache = cache
        """Verified pairs to skip and to fill (``None``: verify every tx)."""
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="zap-verify")

    def submit(self, block: BlockView) -> PendingVerify:
        n = block.tx_count
        ranges = split_ranges(n, self.workers * self.ranges_per_worker)
        if self.cache is None:
            futures = [self._pool.submit(verify_range, block, lo, hi) for lo, hi in ranges]
        else:
            futures = [
                self._pool.submit(verify_range_cached, block, lo, hi, self.cache)
                for lo, hi in ranges
            ]
        return PendingVerify(block.block_id, n, futures)

    def verify(self, block: BlockView) -> VerdictSlice:
        return self.submit(block).result()

    def submit_views(self, views: Sequence[TxView]) -> list[Future[list[bool]]]:
        """Start :func:`verify_views` over ``views``, cut into one range per worker.

        The futures' lists, concatenated in order, hold one verdict per view
        (the pool's cache, if any, is consulted and filled).  A range holds at
        least :data:`MIN_VIEWS_PER_TASK` views: a small batch is one task.
        """
        parts = min(self.workers, -(-len(views) // MIN_VIEWS_PER_TASK))
        return [
            self._pool.submit(verify_views, views[lo:hi], self.cache)
            for lo, hi in split_ranges(len(views), parts)
        ]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> ThreadVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
