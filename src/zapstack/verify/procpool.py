"""The parallel phase on a pre-warmed process pool, the block in shared memory.

Contract
--------
* :class:`ProcessVerifier` starts ``workers`` processes once (``spawn``: no
  forked copies of the parent's threads or locks) and warms each one
  (imports, key decoding paths) before the first block.
* Per block, the parent copies the block buffer once into a fresh
  ``multiprocessing.shared_memory`` segment -- the only copy; a node that
  receives blocks straight into shared memory would skip it -- and hands each
  worker a contiguous range of tx offsets ``(start, end)``.  A worker maps the
  segment, views each tx frame in place (its offsets table gives the field
  ends; the block's ingress already validated it), verifies the signature and
  returns ``(index, tx_id, ok)`` triples: nothing of the payload is pickled
  either way.
* Unwind (:meth:`PendingVerify.drop`) cancels queued ranges and unlinks the
  segment at once; a worker already mapped keeps its mapping until it
  finishes (POSIX semantics), one not yet mapped finds no segment and returns
  nothing.  O(0) for the caller, idempotent.
"""

from __future__ import annotations

import contextlib
import os
import struct
from concurrent.futures import Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from multiprocessing.shared_memory import SharedMemory

from zapstack.errors import WireCode
from zapstack.verify.parallel import PendingVerify, TxVerdict, VerdictSlice, split_ranges
from zapstack.zap.schema import TX_SCHEMAS
from zapstack.zap.sigschemes import verify_signature
from zapstack.zap.views import BlockView, TxView

__all__ = ["ProcessVerifier", "tx_view_at"]

_U16 = struct.Struct("<H")


def tx_view_at(buf: memoryview, start: int, end: int) -> TxView:
    """View the (already validated) tx frame at ``buf[start:end]`` in place.

    The field end offsets are the frame's offsets table: ``field_count`` u32
    LE entries at byte 21 (``docs/formats/zap.md``).
    """
    mv = buf[start:end]
    count = _U16.unpack_from(mv, 16)[0]
    ends = struct.unpack_from(f"<{count}I", mv, 21)
    return TxView(mv, TX_SCHEMAS[mv[4]], ends)


def _warm() -> None:
    """Pool initializer: import and exercise the verify path once."""
    verify_signature(1, bytes(32), bytes(32), bytes(64))


def _verify_shm_range(
    name: str, spans: list[tuple[int, int]], lo: int
) -> list[tuple[int, bytes, bool]]:
    """Worker: verify txs ``spans`` (indices from ``lo``) of the block in segment ``name``."""
    try:
        shm = SharedMemory(name=name)
    except FileNotFoundError:  # dropped before this range started
        return []
    # spawn children share the parent's resource tracker, which already holds
    # this name: the parent's unlink() is the one unregistration.
    out: list[tuple[int, bytes, bool]] = []
    buf = shm.buf
    assert buf is not None
    try:
        for k, (start, end) in enumerate(spans):
            tx = tx_view_at(buf, start, end)
            digest = tx.digest
            ok = verify_signature(tx.scheme, tx.pubkey, digest, tx.signature)
            out.append((lo + k, digest, ok))
            del tx
    finally:
        del buf
        shm.close()
    return out


def _to_verdicts(fut: Future[list[tuple[int, bytes, bool]]]) -> list[TxVerdict]:
    return [
        TxVerdict(i, tx_id, ok, WireCode.NO_ERROR if ok else WireCode.BAD_SIGNATURE)
        for i, tx_id, ok in fut.result()
    ]


class _Adapted(Future[list[TxVerdict]]):
    """A future of verdicts over a worker's future of triples."""

    def __init__(self, inner: Future[list[tuple[int, bytes, bool]]]) -> None:
        super().__init__()
        self._inner = inner

    def result(self, timeout: float | None = None) -> list[TxVerdict]:
        self._inner.result(timeout)
        return _to_verdicts(self._inner)

    def cancel(self) -> bool:
        return self._inner.cancel()


class ProcessVerifier:
    """The parallel phase on ``workers`` pre-warmed processes over shared memory."""

    def __init__(self, workers: int | None = None, *, ranges_per_worker: int = 1) -> None:
        self.workers = workers or os.cpu_count() or 1
        """Processes in the pool."""
        self.ranges_per_worker = ranges_per_worker
        """Tasks per process per block (each costs one IPC round trip)."""
        self._pool = ProcessPoolExecutor(
            self.workers, mp_context=get_context("spawn"), initializer=_warm
        )
        wait([self._pool.submit(_warm) for _ in range(self.workers * 2)])

    def submit(self, block: BlockView) -> PendingVerify:
        buf = block.buffer
        n = block.tx_count
        shm = SharedMemory(create=True, size=max(1, len(buf)))
        shm_buf = shm.buf
        assert shm_buf is not None
        shm_buf[: len(buf)] = buf
        del shm_buf
        spans = block.tx_spans()
        futures: list[Future[list[TxVerdict]]] = []
        for lo, hi in split_ranges(n, self.workers * self.ranges_per_worker):
            inner = self._pool.submit(_verify_shm_range, shm.name, spans[lo:hi], lo)
            futures.append(_Adapted(inner))

        def cleanup() -> None:
            shm.close()
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()

        return PendingVerify(block.block_id, n, futures, cleanup, shm.name)

    def verify(self, block: BlockView) -> VerdictSlice:
        return self.submit(block).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ProcessVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
