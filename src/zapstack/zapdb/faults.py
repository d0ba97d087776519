"""Fault injection for the commit path: a store that fails its writes on demand.

A :data:`FaultInjector` passed to ``ZapDB.open(fault_injector=...)`` is called before
every write the commit path makes (``op`` in ``"put"``, ``"delete"``, ``"node_put"``,
``"node_delete"``, ``"meta"``, ``"commit"``; ``index`` counts writes in this commit).
Raising :class:`OSError` there (ENOSPC, EIO) behaves exactly like LMDB failing the write:
the LMDB txn is aborted and the store halts.  :class:`FailAt` is the usual injector.  A
store with an injector writes every commit write by write (no bulk ``putmulti``, no
early writes: :mod:`.early`), so each write can fail on its own.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

__all__ = ["FailAt", "FaultInjector"]

FaultInjector = Callable[[str, int], None]
"""``(op, index) -> None``; raise OSError to simulate a failing disk."""


class FailAt:
    """A fault injector that raises ``OSError(err)`` at the ``at``-th write of a commit.

    ``armed`` can be cleared to let commits through; ``fired`` counts failures.
    """

    def __init__(self, at: int = 0, err: int = errno.ENOSPC, ops: frozenset[str] | None = None):
        self.at = at
        self.err = err
        self.ops = ops
        self.armed = True
        self.fired = 0

    def __call__(self, op: str, index: int) -> None:
        if self.armed and index >= self.at and (self.ops is None or op in self.ops):
            self.fired += 1
            raise OSError(self.err, f"injected {os.strerror(self.err)} at {op} #{index}")
