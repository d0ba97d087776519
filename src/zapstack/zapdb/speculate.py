"""Speculative execution: apply candidate blocks on branches while consensus decides.

LP-0202 "Speculative execution contract".  :func:`speculate` opens one
:class:`~zapstack.zapdb.txn.Branch` per candidate (at most ``max_width``,
default 3 -- the reference cap) on the *same* head snapshot and runs
``apply_fn(branch, block)`` for each on a thread pool, then seals the branch
(computes its post-state root).  When the decision arrives,
:meth:`Speculation.decide` waits for the winner's apply (usually long
finished), commits that branch and discards every other one -- so the latency
from decision to commit is ``max(0, apply - consensus)`` instead of
``apply + consensus``.

* Candidates beyond ``max_width`` are not speculated; if one of them wins,
  ``decide`` applies it then (``Decision.speculative`` is False).
* Blocks are handed to ``apply_fn`` as they are (pointer share): N branches
  read the same immutable buffers; nothing is re-encoded per branch.
* ``decide`` twice with the same winner returns the same decision; with a
  different winner it raises LocalProtocolError.  If the winner's apply raised,
  every branch is discarded and that exception propagates.  ConflictError (the
  head moved under the speculation) and FatalStoreError propagate from commit.
* ``abandon()`` discards every branch: idempotent, never raises, any state.
  A losing apply still running sees StoreError on its next write and stops.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from zapstack.errors import LocalProtocolError
from zapstack.zapdb.store import ZapDB
from zapstack.zapdb.txn import Txn

__all__ = ["DEFAULT_WIDTH", "Decision", "Speculation", "speculate"]

DEFAULT_WIDTH = 3
"""The reference cap on speculative fan-out."""

B = TypeVar("B")
ApplyFn = Callable[[Txn, B], Any]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :meth:`Speculation.decide`."""

    winner: Hashable
    """The candidate id that was committed."""
    root: bytes
    """The committed state root."""
    speculative: bool
    """True if the winner was applied on a branch before the decision."""
    applied_before_decide: bool
    """True if that apply had already finished when ``decide`` was called."""
    result: Any
    """What ``apply_fn`` returned for the winner."""


class Speculation(Generic[B]):
    """Candidate blocks applied on parallel branches (see module doc)."""

    def __init__(
        self,
        db: ZapDB,
        candidates: Iterable[tuple[Hashable, B]],
        apply_fn: ApplyFn[B],
        *,
        max_width: int = DEFAULT_WIDTH,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        if max_width < 1:
            raise LocalProtocolError("speculative width must be at least 1")
        self._db = db
        self._apply = apply_fn
        self._blocks: dict[Hashable, B] = dict(candidates)
        self._lock = threading.Lock()
        self._decision: Decision | None = None
        self._branches: dict[Hashable, Txn] = {}
        self._futures: dict[Hashable, Future[Any]] = {}
        ids = list(self._blocks)[:max_width]
        self._own_pool = executor is None
        self._pool = executor or ThreadPoolExecutor(max_workers=max(1, len(ids)))
        for cid in ids:
            branch = db.snapshot()
            self._branches[cid] = branch
            self._futures[cid] = self._pool.submit(self._run, branch, self._blocks[cid])

    def _run(self, branch: Txn, block: B) -> Any:
        """Apply, then seal: compute the post-state root while consensus decides."""
        result = self._apply(branch, block)
        branch.root()
        return result

    @property
    def speculated(self) -> tuple[Hashable, ...]:
        """Ids of the candidates applied on branches."""
        return tuple(self._branches)

    def ready(self, cid: Hashable) -> bool:
        """True once the branch for ``cid`` has finished applying."""
        fut = self._futures.get(cid)
        return fut is not None and fut.done()

    def decide(self, winner: Hashable) -> Decision:
        """Commit ``winner``'s branch (applying it now if it was not speculated)."""
        with self._lock:
            if self._decision is not None:
                if self._decision.winner != winner:
                    raise LocalProtocolError(
                        f"already decided for {self._decision.winner!r}, not {winner!r}"
                    )
                return self._decision
            if winner not in self._blocks:
                raise LocalProtocolError(f"{winner!r} is not a candidate")
            try:
                branch = self._branches.pop(winner, None)
                if branch is not None:
                    fut = self._futures[winner]
                    done_before = fut.done()
                    result = fut.result()
                else:
                    done_before = False
                    self._discard_all()  # free the losers before the slow path
                    branch = self._db.snapshot()
                    self._branches[winner] = branch
                    result = self._apply(branch, self._blocks[winner])
                root = branch.commit()
            finally:
                if branch is not None:
                    branch.discard()  # no-op after a successful commit
                self._discard_all()
            self._decision = Decision(winner, root, winner in self._futures, done_before, result)
            return self._decision

    def abandon(self) -> None:
        """Discard every branch (idempotent, never raises)."""
        with self._lock:
            self._discard_all()

    def _discard_all(self) -> None:
        branches, self._branches = self._branches, {}
        for branch in branches.values():
            branch.discard()
        for fut in self._futures.values():
            fut.cancel()
        if self._own_pool:
            self._pool.shutdown(wait=False)


def speculate(
    db: ZapDB,
    candidates: Iterable[tuple[Hashable, B]],
    apply_fn: ApplyFn[B],
    *,
    max_width: int = DEFAULT_WIDTH,
    executor: ThreadPoolExecutor | None = None,
) -> Speculation[B]:
    """Start applying up to ``max_width`` candidates; call ``decide`` or ``abandon``."""
    return Speculation(db, candidates, apply_fn, max_width=max_width, executor=executor)
