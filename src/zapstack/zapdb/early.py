"""A commit's LMDB write txn, opened before the commit: records written as they become final.

State sync (:class:`~zapstack.zapdb.bulk.ChunkLoader`) writes each verified chunk's tree
records as soon as they are final, into the LMDB write txn that the sync's commit then
finishes, so that the commit is left with the entries and the few records that are only
known at the end (``docs/formats/zapdb.md`` "Bulk paths").  :class:`EarlyTxn` is that
open txn's record in its :class:`~zapstack.zapdb.store.ZapDB`.

Contract:

* One at a time per store, owned by one :class:`~zapstack.zapdb.txn.Txn` (its serial),
  opened by that txn's first early write and bound to the OS thread that made it: LMDB
  ties a write txn to the thread that began it (its writer lock is that thread's), so any
  other thread's use is refused with StoreError, never attempted.
* While it is open, any other txn's commit or early write is refused with ConflictError:
  LMDB would make it wait for the writer lock, forever when it is the same thread.
* It ends with its owner: the commit takes it over (and commits or aborts it), a discard
  aborts it.  Early writes are part of the commit's LMDB txn, so the store holds them only
  if that commit succeeds; a failure at any point leaves the last committed state.  A
  discard from another thread (``Txn.discard`` may come from any thread) marks it
  ``doomed``; the store aborts it at its next write call on the opening thread.
* A write that fails (``lmdb.Error``, ``OSError``) aborts it and halts the store, as a
  failing commit does (the store's code does that; this module only checks ownership).
"""

from __future__ import annotations

import threading
from typing import Any

from zapstack.errors import ConflictError, StoreError

__all__ = ["EarlyTxn"]


class EarlyTxn:
    """The open LMDB write ``txn`` of txn ``owner`` (a serial), made on this thread."""

    __slots__ = ("doomed", "owner", "thread", "txn")

    def __init__(self, owner: int, txn: Any) -> None:
        self.owner = owner
        self.txn = txn
        self.thread = threading.get_ident()
        self.doomed = False
        """Its owner was discarded on another thread: abort it on this one."""

    def on_thread(self) -> bool:
        """Whether the caller runs on the thread that opened the txn."""
        return threading.get_ident() == self.thread

    def check(self, owner: int) -> None:
        """Refuse ``owner``'s use unless it owns this txn, on the thread that opened it."""
        if owner != self.owner or self.doomed:
            raise ConflictError("a state load holds the store's write txn until it ends")
        if not self.on_thread():
            raise StoreError(
                "a state load's write txn is used only on the thread that opened it "
                "(LMDB binds a write txn to its thread)"
            )
