"""The thin concurrent driver of the block production pipeline.

Runs :class:`~zapstack.producer.pipeline.Pipeline` with real overlap: SELECT
runs on the driver's own thread (the mempool has one owner: this thread
selects from it and removes from it), BUILD and SIGN run on a two-thread pool,
so block N+1 selects while N builds while N-1 signs.  Every side effect of an
event happens on the driver thread, in event order (the pipeline emits a
slot's ``BlockAbandoned`` only after its running BUILD reported, so a rollback
never races the build it undoes):

==================  =======================================================
event               effect
==================  =======================================================
``TxDropped``       ``mempool.remove([tx_id])``
``BlockAbandoned``  ``chain.abandon(seq)`` (rolls back that block and younger)
``BlockFinalized``  ``chain.finalized(seq)``, ``mempool.remove(tx ids)``
==================  =======================================================

Select asks the mempool for ``n + reserved`` txs (and ``max_bytes + reserved
bytes``) and skips the reserved ones, so txs held by in-flight blocks are
never picked twice and each sender's next nonces follow its in-flight ones.

Before a block goes to SIGN the driver checks that it extends the chain's
finalized head: the proposer's own block not doing so is a local bug, raised
as :class:`~zapstack.errors.LocalProtocolError`, never a rejection to retry.
Once the goal is reached no new stage starts; the jobs still running are
drained and their results applied (a block certified meanwhile is final and
returned too), then the unfinalized slots are rolled back off the branch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

from zapstack.errors import InvalidBlock, LocalProtocolError, WireCode, ZapError
from zapstack.producer.build import BuildChain, Built
from zapstack.producer.certify import Certify
from zapstack.producer.pipeline import (
    BlockAbandoned,
    BlockFinalized,
    Event,
    Pipeline,
    StageName,
    Task,
    TxDropped,
)
from zapstack.zap.views import BlockView, TxView

__all__ = ["Finalized", "Producer", "TxSource"]


class TxSource(Protocol):
    """What the producer needs of :class:`~zapstack.mempool.Mempool`."""

    def select(self, n: int, max_bytes: int | None = None) -> list[TxView]:
        """Up to ``n`` txs by fee priority, per-sender nonce order, no copy."""
        ...

    def remove(self, tx_ids: Iterable[bytes]) -> int:
        """Drop these ids (absent ones are ignored)."""
        ...


@dataclass(frozen=True, slots=True)
class Finalized:
    """A block the pipeline finalized."""

    block: BlockView
    """The block."""
    cert: object
    """What ``certify`` returned."""


class Producer:
    """Drives select -> build -> sign with ``depth`` blocks in flight."""

    def __init__(
        self,
        mempool: TxSource,
        chain: BuildChain,
        certify: Certify,
        *,
        depth: int = 3,
        block_txs: int = 1000,
        block_bytes: int | None = None,
    ) -> None:
        self.mempool = mempool
        self.chain = chain
        self.certify = certify
        self.depth = depth
        """Blocks in flight (1 = no overlap)."""
        self.block_txs = block_txs
        """N: txs selected per block."""
        self.block_bytes = block_bytes
        """Byte budget per block (None = unbounded)."""
        self.dropped: list[tuple[bytes, WireCode]] = []
        """Txs dropped from the mempool because they failed inside a block."""
        self.abandoned: list[int] = []
        """Slots abandoned, in the order their rollbacks were applied."""
        self._next_seq = 0

    def _select(self, pipe: Pipeline) -> list[TxView]:
        reserved = pipe.reserved
        budget = None if self.block_bytes is None else self.block_bytes + pipe.reserved_bytes
        picked = self.mempool.select(self.block_txs + len(reserved), budget)
        out: list[TxView] = []
        used = 0
        for tx in picked:
            if tx.tx_id in reserved:
                continue
            if self.block_bytes is not None and used + len(tx) > self.block_bytes:
                continue
            out.append(tx)
            used += len(tx)
            if len(out) == self.block_txs:
                break
        return out

    def _apply(self, events: Sequence[Event]) -> None:
        for ev in events:
            if isinstance(ev, TxDropped):
                self.mempool.remove([ev.tx_id])
                self.dropped.append((ev.tx_id, ev.code))
            elif isinstance(ev, BlockAbandoned):
                self.chain.abandon(ev.seq)
                self.abandoned.append(ev.seq)
            elif isinstance(ev, BlockFinalized):
                self.chain.finalized(ev.seq)
                self.mempool.remove(ev.tx_ids)

    def _complete(
        self, pipe: Pipeline, task: Task, fut: Future[object], built: dict[int, Built]
    ) -> tuple[list[Event], Finalized | None]:
        if task.stage is StageName.BUILD:
            b = fut.result()  # a build failure is a local bug or a store fault: raise
            assert isinstance(b, Built)
            if task.seq in pipe.in_flight:
                built[task.seq] = b
            left_out = [(f.tx_id, f.code, f.nonce_ahead) for f in b.failures]
            return pipe.built(task, tuple(t.tx_id for t in b.included), left_out), None
        block = built[task.seq].view
        try:
            cert = fut.result()
        except InvalidBlock as exc:
            del built[task.seq]
            bad = None
            if 0 <= exc.tx_index < block.tx_count:
                bad = (block.tx(exc.tx_index).tx_id, exc.code)
            return pipe.failed(task, str(exc), bad), None
        except ZapError as exc:
            del built[task.seq]
            return pipe.failed(task, str(exc)), None
        del built[task.seq]
        return pipe.signed(task), Finalized(block, cert)

    def run(self, blocks: int) -> list[Finalized]:
        """Produce until at least ``blocks`` blocks are final.

        Build/store faults propagate; a rejected block is abandoned and its
        good txs are selected again (see :mod:`zapstack.producer.pipeline`).
        Blocks finalized by jobs still running at the goal are returned too.
        """
        pipe = Pipeline(self.depth, first_seq=self._next_seq)
        done: list[Finalized] = []
        built: dict[int, Built] = {}
        selected: dict[int, list[TxView]] = {}
        running: dict[Future[object], Task] = {}
        with ThreadPoolExecutor(2, thread_name_prefix="zap-produce") as pool:
            while running or len(done) < blocks:
                if len(done) < blocks:
                    self._start(pipe, pool, running, selected, built)
                if not running:  # pragma: no cover - poll always starts work while not done
                    raise AssertionError("production pipeline stalled")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task = running.pop(fut)
                    events, final = self._complete(pipe, task, fut, built)
                    self._apply(events)
                    if final is not None and any(isinstance(e, BlockFinalized) for e in events):
                        done.append(final)
        self._next_seq = pipe.next_seq
        if pipe.in_flight:  # unfinalized work is rolled back off the build branch
            self.chain.abandon(pipe.in_flight[0])
        return done

    def _start(
        self,
        pipe: Pipeline,
        pool: ThreadPoolExecutor,
        running: dict[Future[object], Task],
        selected: dict[int, list[TxView]],
        built: dict[int, Built],
    ) -> None:
        """Start every job the pipeline allows now."""
        tasks = pipe.poll()
        while tasks:
            for task in tasks:
                if task.stage is StageName.SELECT:  # inline: the mempool's owner
                    txs = self._select(pipe)
                    selected[task.seq] = txs
                    pipe.selected(task, [(t.tx_id, len(t)) for t in txs])
                elif task.stage is StageName.BUILD:
                    txs = selected.pop(task.seq)
                    running[pool.submit(self.chain.build, task.seq, txs)] = task
                else:
                    block = built[task.seq].view
                    self._check_extends_head(block)
                    running[pool.submit(self.certify, block)] = task
            tasks = pipe.poll()
        for stale in (selected, built):  # slots abandoned meanwhile
            for seq in [s for s in stale if s not in pipe.in_flight]:
                del stale[seq]

    def _check_extends_head(self, block: BlockView) -> None:
        height, head, _ = self.chain.head
        if block.height != height + 1 or block.parent != head:
            raise LocalProtocolError(
                f"own block at height {block.height} does not extend the finalized head "
                f"{height}/{head.hex()[:16]}: the build chain holds an orphan (local bug)"
            )
