"""The block production pipeline's scheduler: sans-IO, no threads, no state store.

Theory of operation
-------------------
Blocks flow through three stages (LP-0202 §2): SELECT (mempool picks N by
fee, pointer shuffle) -> BUILD (execute on the speculative build branch,
compute the post-state root, lay out and sign the block frame) -> SIGN (cert
legs aggregate).  Each block in flight is a *slot* numbered by ``seq``
(increasing, never reused).  The scheduler only decides *what may start now*
and turns results into events; a driver runs the work.

Start rules (checked by :meth:`Pipeline.poll`, one job per stage at a time):

=======  ==================================================================
stage    may start for slot ``s`` when
=======  ==================================================================
SELECT   fewer than ``depth`` slots are in flight (and the block budget,
         if any, is not spent): a new slot is opened
BUILD    ``s`` is selected and every older slot is built (one builder: each
         block's state is its predecessor's post-state)
SIGN     ``s`` is built and is the oldest slot (certs finalize in order)
=======  ==================================================================

So with ``depth = 3``, block N+1 selects while N builds while N-1 signs;
``depth = 1`` is the no-overlap baseline.  Txs held by in-flight slots are
*reserved*: the next SELECT must not pick them again.

Results: :meth:`Pipeline.selected`, :meth:`Pipeline.built` (txs the build left
out: dropped, or released if only their nonce is ahead), :meth:`Pipeline.signed`
(the oldest slot finalizes), :meth:`Pipeline.failed` (the slot and every
younger slot -- built on its state -- are abandoned; a named bad tx is
dropped, the others are released and will be selected again: the proposer
rebuilds without the bad tx next round).  A result for a slot that was
abandoned meanwhile is ignored (its stage becomes free).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from zapstack.errors import LocalProtocolError, WireCode

__all__ = [
    "BlockAbandoned",
    "BlockFinalized",
    "Event",
    "Pipeline",
    "StageName",
    "Task",
    "TxDropped",
]


class StageName(enum.IntEnum):
    """The three stages, in order."""

    SELECT = 1
    BUILD = 2
    SIGN = 3


@dataclass(frozen=True, slots=True)
class Task:
    """A job the driver may start now."""

    seq: int
    """Slot (block) number."""
    stage: StageName
    """Which stage to run for it."""


@dataclass(frozen=True, slots=True)
class BlockFinalized:
    """The oldest slot's cert is done: its block is final."""

    seq: int
    """Slot number."""
    tx_ids: tuple[bytes, ...]
    """Txs the block holds (remove them from the mempool)."""


@dataclass(frozen=True, slots=True)
class BlockAbandoned:
    """A slot was given up (its build branch state must be rolled back)."""

    seq: int
    """Slot number."""
    reason: str
    """Why."""


@dataclass(frozen=True, slots=True)
class TxDropped:
    """A tx failed inside a block: drop it from the mempool."""

    tx_id: bytes
    """The tx."""
    code: WireCode
    """Why it failed."""


Event = BlockFinalized | BlockAbandoned | TxDropped


@dataclass(slots=True)
class _Slot:
    seq: int
    done: StageName | None = None
    tx_ids: tuple[bytes, ...] = ()
    nbytes: int = 0


class Pipeline:
    """Decides which stage jobs may run; turns their results into events."""

    def __init__(
        self, depth: int = 3, *, max_blocks: int | None = None, first_seq: int = 0
    ) -> None:
        if depth < 1:
            raise LocalProtocolError("pipeline depth must be >= 1")
        self.depth = depth
        """Blocks in flight at most (2-3 in the spec; 1 = no overlap)."""
        self.max_blocks = max_blocks
        """Slots to open in all (None = unbounded)."""
        self._slots: dict[int, _Slot] = {}
        self._busy: dict[StageName, int | None] = dict.fromkeys(StageName)
        self._first = first_seq
        self._next = first_seq
        self._reserved: dict[bytes, int] = {}
        self._abandoning: dict[int, str] = {}  # seq -> reason, its BUILD still running
        self.finalized = 0
        """Blocks finalized so far."""

    # -- queries -----------------------------------------------------------------
    @property
    def in_flight(self) -> tuple[int, ...]:
        """Open slots, oldest first."""
        return tuple(self._slots)

    @property
    def next_seq(self) -> int:
        """The number the next slot will get (slot numbers are never reused)."""
        return self._next

    @property
    def abandoning(self) -> tuple[int, ...]:
        """Slots abandoned while their BUILD runs (their event waits for its result)."""
        return tuple(self._abandoning)

    @property
    def reserved(self) -> frozenset[bytes]:
        """Tx ids held by in-flight slots (SELECT must skip them)."""
        return frozenset(self._reserved)

    @property
    def reserved_bytes(self) -> int:
        """Sum of the reserved txs' frame sizes."""
        return sum(self._reserved.values())

    def busy(self, stage: StageName) -> int | None:
        """The slot whose job of ``stage`` is running, if any."""
        return self._busy[stage]

    @property
    def idle(self) -> bool:
        """No job running, no slot in flight, and no slot left to open."""
        running = any(v is not None for v in self._busy.values())
        return not running and not self._slots and not self._can_open()

    # -- scheduling --------------------------------------------------------------
    def _can_open(self) -> bool:
        return len(self._slots) + len(self._abandoning) < self.depth and (
            self.max_blocks is None or self._next - self._first < self.max_blocks
        )

    def poll(self) -> list[Task]:
        """Jobs that may start now (marked running); SIGN first, then BUILD, SELECT."""
        tasks: list[Task] = []
        slots = list(self._slots.values())
        if self._busy[StageName.SIGN] is None and slots and slots[0].done is StageName.BUILD:
            tasks.append(self._start(slots[0].seq, StageName.SIGN))
        if self._busy[StageName.BUILD] is None:
            for s in slots:
                if s.done is None:
                    break  # not selected yet: nothing younger may build either
                if s.done is StageName.SELECT:
                    tasks.append(self._start(s.seq, StageName.BUILD))
                    break
        if self._busy[StageName.SELECT] is None and self._can_open():
            seq = self._next
            self._next += 1
            self._slots[seq] = _Slot(seq)
            tasks.append(self._start(seq, StageName.SELECT))
        return tasks

    def _start(self, seq: int, stage: StageName) -> Task:
        self._busy[stage] = seq
        return Task(seq, stage)

    def _finish(self, task: Task) -> _Slot | None:
        if self._busy[task.stage] != task.seq:
            raise LocalProtocolError(f"{task} is not running")
        self._busy[task.stage] = None
        return self._slots.get(task.seq)  # None: abandoned meanwhile

    # -- results -----------------------------------------------------------------
    def selected(self, task: Task, txs: list[tuple[bytes, int]]) -> None:
        """SELECT done: ``txs`` = (tx id, frame size) picked, in block order."""
        slot = self._finish(task)
        if slot is None:
            return
        slot.done = StageName.SELECT
        slot.tx_ids = tuple(t for t, _ in txs)
        for tx_id, size in txs:
            self._reserved[tx_id] = size

    def built(
        self, task: Task, included: tuple[bytes, ...], left_out: list[tuple[bytes, WireCode, bool]]
    ) -> list[Event]:
        """BUILD done: ``left_out`` = (tx id, code, nonce ahead?) rolled back on the branch.

        For an abandoning slot this is the moment its :class:`BlockAbandoned`
        is emitted (its result is not used: its txs were already released).
        """
        slot = self._finish(task)
        if slot is None:
            return self._abandoned_build(task)
        slot.done = StageName.BUILD
        slot.tx_ids = included
        events: list[Event] = []
        for tx_id, code, ahead in left_out:
            self._reserved.pop(tx_id, None)
            if not ahead:
                events.append(TxDropped(tx_id, code))
        return events

    def signed(self, task: Task) -> list[Event]:
        """SIGN done: the slot's block is final."""
        slot = self._finish(task)
        if slot is None:
            return []
        del self._slots[slot.seq]
        for tx_id in slot.tx_ids:
            self._reserved.pop(tx_id, None)
        self.finalized += 1
        return [BlockFinalized(slot.seq, slot.tx_ids)]

    def failed(
        self, task: Task, reason: str, bad_tx: tuple[bytes, WireCode] | None = None
    ) -> list[Event]:
        """BUILD or SIGN failed: abandon the slot and every younger one.

        ``bad_tx``: the tx the rejection named (dropped); every other tx of the
        abandoned slots is released and will be selected again.  A younger slot
        whose BUILD is running becomes *abandoning* (see the module doc).
        """
        slot = self._finish(task)
        if slot is None:
            return self._abandoned_build(task)
        events: list[Event] = []
        if bad_tx is not None:
            events.append(TxDropped(*bad_tx))
        for seq in [s for s in self._slots if s >= slot.seq]:
            gone = self._slots.pop(seq)
            for tx_id in gone.tx_ids:
                self._reserved.pop(tx_id, None)
            if self._busy[StageName.BUILD] == seq:
                self._abandoning[seq] = reason  # unwound once its BUILD reports
            else:
                events.append(BlockAbandoned(seq, reason))
        return events

    def _abandoned_build(self, task: Task) -> list[Event]:
        """The result of a job whose slot is gone: ends an abandoning BUILD."""
        if task.stage is StageName.BUILD and task.seq in self._abandoning:
            return [BlockAbandoned(task.seq, self._abandoning.pop(task.seq))]
        return []
