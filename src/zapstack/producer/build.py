"""The Build stage's state: one speculative ZapDB branch carrying every in-flight block.

Theory of operation
-------------------
Block N builds on block N-1's post-state while N-1 is still being signed, so
the proposer cannot build on the committed head.  A :class:`BuildChain` keeps
ONE ZapDB branch (``db.snapshot()``) and executes each block's txs into it, in
order, opening every block with an empty per-tx bracket as a *savepoint*.
ZapDB's ``rollback(diff)`` undoes a diff and every later one, so:

* a tx failing inside the block is rolled back alone (it is the latest diff)
  and left out of the block (:func:`~zapstack.verify.execute_candidates`);
* abandoning block N rolls back to N's savepoint, undoing N and every younger
  block built on it -- O(their diffs);
* a finalized block just moves the chain's head pointer;
* the newest block may be *extended* before it is signed for its cert
  (:meth:`BuildChain.extend`: more txs on the tip, laid out and signed again):
  a block built ahead picks up the txs that arrived meanwhile.

The branch is never committed: the node commits finalized blocks through its
:class:`~zapstack.verify.BlockExecutor` like any validator.  Its snapshot goes
stale as the head moves (reads stay correct: the overlay holds every write
since), so every ``rebase_every`` blocks, when the store's committed root
equals the finalized head's, the chain reopens the branch on the store head
and replays the still-unfinalized blocks' txs (at most ``depth - 1`` blocks).

Abandoned slots leave a *tombstone*: ``build`` of a slot that was already
abandoned raises :class:`~zapstack.errors.LocalProtocolError` instead of
leaving an orphan block on the branch that every later block would build on.
The pipeline never asks for that (:mod:`zapstack.producer.pipeline` unwinds a
slot only after its BUILD reported); the tombstone makes a driver that gets the
order wrong fail loudly.  Tombstones below the newest built slot are pruned
(slots are built in increasing order), so there are at most ``depth`` of them.

Threads: one builder at a time; a lock serialises ``build``/``abandon``/
``finalized`` (an abandon waits for a running build, then rolls it back too).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from zapstack.errors import LocalProtocolError
from zapstack.verify.executor import ChainBranch, TxFailure, execute_candidates
from zapstack.verify.state import account_id
from zapstack.zap.frames import build_block, parse_block
from zapstack.zap.sigschemes import Signer
from zapstack.zap.views import BlockView, TxView

__all__ = ["BuildChain", "BuildStore", "Built"]


class BuildStore(Protocol):
    """What the build chain needs of :class:`~zapstack.zapdb.ZapDB`."""

    def snapshot(self) -> ChainBranch[Any]:
        """A speculative branch on the committed head."""
        ...

    def root(self) -> bytes:
        """The committed state root."""
        ...


@dataclass(frozen=True, slots=True)
class Built:
    """A block laid out and signed by the proposer, ready for its cert."""

    seq: int
    """Pipeline slot."""
    view: BlockView
    """The block (one new buffer holding the selected tx frames)."""
    included: tuple[TxView, ...]
    """Txs in the block, in order."""
    failures: tuple[TxFailure, ...]
    """Txs rolled back on the branch and left out."""


@dataclass(slots=True)
class _Mark:
    diff: Any
    height: int
    block_id: bytes
    root: bytes
    txs: tuple[TxView, ...]


class BuildChain:
    """Executes blocks N-1, N, N+1... into one speculative branch (see module doc)."""

    def __init__(
        self,
        db: BuildStore,
        proposer: Signer,
        *,
        height: int = 0,
        head: bytes = bytes(32),
        chain_id: int | None = None,
        rebase_every: int = 16,
        now_ms: Callable[[], int] = lambda: 0,
    ) -> None:
        self._db = db
        self.proposer = proposer
        """The proposer's key (signs blocks, receives fees)."""
        self._proposer_id = account_id(proposer.public_key)
        self._chain_id = chain_id
        self.rebase_every = rebase_every
        """Blocks built between attempts to reopen the branch on the store head."""
        self._now_ms = now_ms
        self._lock = threading.Lock()
        self.head = (height, head, db.root())
        """Finalized (height, block id, state root)."""
        self._branch = db.snapshot()
        self._marks: dict[int, _Mark] = {}
        self._tombstones: set[int] = set()
        self._since_rebase = 0
        self.rebases = 0
        """Times the branch was reopened (for tests and metrics)."""

    def _tip(self) -> tuple[int, bytes]:
        if self._marks:
            last = self._marks[next(reversed(self._marks))]
            return last.height, last.block_id
        return self.head[0], self.head[1]

    def build(self, seq: int, txs: list[TxView]) -> Built:
        """Execute ``txs`` on the chain tip, leave failing ones out, lay out and sign.

        Raises :class:`LocalProtocolError` if slot ``seq`` was abandoned or built
        already (a driver bug: the result would be an orphan on the branch).
        """
        with self._lock:
            if seq in self._tombstones or seq in self._marks:
                raise LocalProtocolError(f"build of slot {seq}, which was abandoned or built")
            self._tombstones = {s for s in self._tombstones if s > seq}
            if self._since_rebase >= self.rebase_every:
                self._rebase()
            branch = self._branch
            branch.begin_tx()
            savepoint = branch.end_tx()
            included, failures = execute_candidates(branch, txs, self._proposer_id)
            height, parent = self._tip()
            view = self._lay_out(height + 1, parent, branch.root(), included)
            self._marks[seq] = _Mark(
                savepoint, height + 1, view.block_id, view.state_root, tuple(included)
            )
            self._since_rebase += 1
            return Built(seq, view, tuple(included), tuple(failures))

    def extend(self, seq: int, txs: list[TxView]) -> Built:
        """Append ``txs`` to block ``seq``, the newest built, before it goes to SIGN.

        They run on the tip after the block's own txs (failing ones left out);
        the block is laid out and signed again (a new block id; the savepoint
        stays, so ``abandon(seq)`` undoes both).  ``failures`` are the new txs'.
        Raises :class:`LocalProtocolError` if ``seq`` is not the newest built slot.
        """
        with self._lock:
            if not self._marks or next(reversed(self._marks)) != seq:
                raise LocalProtocolError(f"extend of slot {seq}, which is not the newest built")
            mark = self._marks[seq]
            older = [m.block_id for s, m in self._marks.items() if s != seq]
            parent = older[-1] if older else self.head[1]  # the block before it
            included, failures = execute_candidates(self._branch, txs, self._proposer_id)
            every = mark.txs + tuple(included)
            view = self._lay_out(mark.height, parent, self._branch.root(), list(every))
            self._marks[seq] = _Mark(mark.diff, mark.height, view.block_id, view.state_root, every)
            return Built(seq, view, every, tuple(failures))

    def _lay_out(self, height: int, parent: bytes, root: bytes, txs: list[TxView]) -> BlockView:
        raw = build_block(
            self.proposer,
            height=height,
            parent=parent,
            timestamp_ms=self._now_ms(),
            state_root=root,
            txs=txs,
            **({} if self._chain_id is None else {"chain_id": self._chain_id}),
        )
        return parse_block(raw, verify_signatures=False)

    def abandon(self, seq: int) -> None:
        """Roll back block ``seq`` and every younger block (idempotent).

        Slot ``seq`` (built or not) and every younger built slot get a tombstone.
        """
        with self._lock:
            self._tombstones.add(seq)
            mark = self._marks.get(seq)
            if mark is None:
                return
            self._branch.rollback(mark.diff)
            for s in [s for s in self._marks if s >= seq]:
                del self._marks[s]
                self._tombstones.add(s)

    def finalized(self, seq: int) -> None:
        """Block ``seq`` is final: it becomes the head."""
        with self._lock:
            mark = self._marks.pop(seq, None)
            if mark is not None:
                self.head = (mark.height, mark.block_id, mark.root)

    def close(self) -> None:
        """Discard the branch (idempotent)."""
        with self._lock:
            self._branch.discard()
            self._marks.clear()

    def _rebase(self) -> None:
        self._since_rebase = 0
        if self._db.root() != self.head[2]:
            return  # the store has not committed our head yet
        fresh = self._db.snapshot()
        marks: dict[int, _Mark] = {}
        for seq, mark in self._marks.items():
            fresh.begin_tx()
            savepoint = fresh.end_tx()
            _, failures = execute_candidates(fresh, list(mark.txs), self._proposer_id)
            if failures or fresh.root() != mark.root:  # cannot happen: same txs, same base
                fresh.discard()
                return
            marks[seq] = _Mark(savepoint, mark.height, mark.block_id, mark.root, mark.txs)
        self._branch.discard()
        self._branch, self._marks = fresh, marks
        self.rebases += 1
