"""Values read at the head, kept across commits: one store read per hot key, not per version.

Contract
--------
:class:`HotValues` remembers ``key -> (value, since)`` for keys read from the
data database: ``value`` (``None``: absent) is the key's committed value at
every version from ``since`` until a later commit writes the key.  The store
keeps that true:

* :meth:`fill` -- a snapshot at version ``v`` read ``key`` from LMDB.  It is
  kept only if ``v`` is still the newest committed version (so no commit after
  ``v`` wrote the key) and the key is not remembered yet; ``since = v``.
* :meth:`advance` -- a commit moved the head from ``old`` to ``new`` with
  ``writes``: every remembered key it wrote now holds the written value from
  ``new`` on.  The store calls it under its head lock, right after the LMDB
  commit; if the memo missed a version (``old`` is not the version it is at)
  it forgets everything.
* :meth:`get` -- a snapshot at version ``v`` may use an entry with
  ``since <= v`` (the value has not changed between ``since`` and the head);
  an older snapshot reads LMDB.

So the answer equals LMDB's at the snapshot's version, for every snapshot.
The memo holds at most ``cap`` keys (full: it starts over).  :meth:`get` takes
no lock (one dict lookup of an immutable tuple); :meth:`fill` and
:meth:`advance` share one lock.  Used by :class:`~zapstack.zapdb.view.Snapshot`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

__all__ = ["MISS", "HotValues"]

MISS = object()
"""What :meth:`HotValues.get` answers when the memo cannot (read LMDB)."""


class HotValues:
    """``key -> (value, since)`` for the newest versions (see the module docstring)."""

    def __init__(self, version: int, cap: int = 1 << 17) -> None:
        self.version = version
        """The newest committed version the memo follows."""
        self.cap = cap
        self._map: dict[bytes, tuple[bytes | None, int]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._map)

    def get(self, key: bytes, version: int) -> object:
        """The value of ``key`` at ``version``, or :data:`MISS`."""
        entry = self._map.get(key)
        if entry is None or entry[1] > version:
            return MISS
        return entry[0]

    def fill(self, key: bytes, value: bytes | None, version: int) -> None:
        """A snapshot at ``version`` read ``value`` for ``key`` from the store."""
        with self._lock:
            if version != self.version or key in self._map:
                return
            if len(self._map) >= self.cap:
                self._map.clear()
            self._map[key] = (value, version)

    def advance(self, old: int, new: int, writes: Mapping[bytes, object]) -> None:
        """A commit moved the head from ``old`` to ``new`` writing ``writes`` (None: delete)."""
        with self._lock:
            memo = self._map
            if old != self.version:
                memo.clear()
            elif len(writes) <= len(memo):
                for key, value in writes.items():
                    if key in memo:
                        memo[key] = (_frozen(value), new)
            else:
                for key in list(memo):
                    if key in writes:
                        memo[key] = (_frozen(writes[key]), new)
            self.version = new


def _frozen(value: object) -> bytes | None:
    """A written value as the store would read it back (bytes, or None if deleted)."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    raise TypeError(f"a store value is bytes, not {type(value).__name__}")
