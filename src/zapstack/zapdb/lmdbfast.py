"""LMDB's bulk calls at LMDB's speed: ``putmulti`` and ``getmulti`` without py-lmdb's toll.

Contract
--------
:func:`putmulti`, :func:`getmulti` and :func:`getter` are ``Cursor.putmulti(items,
append=append)``, ``Cursor.getmulti(keys)`` and ``Cursor.get`` of py-lmdb: the same
records written or read, the same ``(consumed, added)``, ``[(key, value)]`` or value
returned, an LMDB failure raised as the same ``lmdb.Error`` subclass
(``lmdb.MapFullError`` for a full map ...).  Afterwards the cursor's position is
unspecified: close it (ZapDB opens one per bulk call).  Writes hold the GIL (other
threads run every 16,384 records); reads with ``nogil`` release it as py-lmdb's did.

Why: py-lmdb drops and retakes the GIL and updates two atomics around every record,
and builds or unpacks Python objects per record: measured 4-5x the cost of LMDB's own
``mdb_cursor_put(MDB_APPEND)`` on the same records (459-717 vs 121-174 ns a record on
this box; the state-sync client writes ~3.4 records per key).  The C extension's bridge
(``_smtfast_lmdb.h``) makes the same LMDB calls through py-lmdb's own engine table,
for a whole batch under one hold of the GIL, and reads a state-sync loader's records
straight from its arena (:class:`~zapstack.zapdb.bulk.Presorted`).

py-lmdb has no C API: the bridge reads its Cursor/Transaction objects through a mirror
of their layout in the pinned ``lmdb==3.0.0``.  :data:`BRIDGED` says whether the mirror
was checked and bound at import (package version, both types' sizes, then per cursor
the engine it names); when it is not (another lmdb, no C extension), or a cursor is not
one the bridge can read, these calls *are* py-lmdb's methods.  Tests hold both ways equal.
``ZAPSTACK_LMDB_BRIDGE=0`` in the environment turns the bridge off (py-lmdb's methods
throughout), to compare or to rule it out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lmdb

try:
    from zapstack.zapdb import _smtfast
except ImportError:  # pragma: no cover - the extension is optional
    _smtfast = None  # type: ignore[assignment]

__all__ = ["BRIDGED", "error", "getmulti", "getmulti_sized", "getter", "putmulti"]

BRIDGED: bool = (
    _smtfast is not None
    and os.environ.get("ZAPSTACK_LMDB_BRIDGE", "1") != "0"
    and _smtfast.lmdb_bind(lmdb.Cursor, lmdb.Transaction, lmdb.__version__, lmdb.Error)
)
"""Whether the C bridge is bound (else every call is py-lmdb's own)."""

_ERRORS: dict[int, type[lmdb.Error]] = {
    -30799: lmdb.KeyExistsError,
    -30797: lmdb.PageNotFoundError,
    -30796: lmdb.CorruptedError,
    -30795: lmdb.PanicError,
    -30794: lmdb.VersionMismatchError,
    -30793: lmdb.InvalidError,
    -30792: lmdb.MapFullError,
    -30791: lmdb.DbsFullError,
    -30790: lmdb.ReadersFullError,
    -30789: lmdb.TlsFullError,
    -30788: lmdb.TxnFullError,
    -30787: lmdb.CursorFullError,
    -30786: lmdb.PageFullError,
    -30785: lmdb.MapResizedError,
    -30784: lmdb.IncompatibleError,
    -30783: lmdb.BadRslotError,
    -30782: lmdb.BadTxnError,
    -30781: lmdb.BadValsizeError,
    -30780: lmdb.BadDbiError,
    13: lmdb.ReadonlyError,  # EACCES
    22: lmdb.InvalidParameterError,  # EINVAL
    12: lmdb.MemoryError,  # ENOMEM
    28: lmdb.DiskError,  # ENOSPC
}
"""LMDB's error codes (lmdb.h; errno on Linux) -> py-lmdb's exception class for each."""


def error(call: str, rc: int, message: str) -> lmdb.Error:
    """The exception py-lmdb raises for LMDB error ``rc`` from ``call``."""
    return _ERRORS.get(rc, lmdb.Error)(f"{call}: {message}")


def putmulti(cursor: Any, items: Iterable[tuple[Any, Any]], append: bool) -> tuple[int, int]:
    """``cursor.putmulti(items, append=append)``: ``(consumed, added)``."""
    if BRIDGED:
        done = _smtfast.lmdb_putmulti(cursor, items, append)
        if done is not None:
            consumed, added, rc, message = done
            if rc:
                raise error(f"mdb_cursor_put() element #{consumed}", rc, message)
            return consumed, added
    result: tuple[int, int] = cursor.putmulti(items, append=append)
    return result


def getter(cursor: Any, nogil: bool = False) -> Callable[[bytes], bytes | None]:
    """``cursor.get``, as a callable that the state tree's C reads call without Python (a
    bridged cursor), or ``cursor.get`` itself.  ``nogil``: as in :func:`getmulti` (each
    lookup lets other threads run, as py-lmdb's ``get`` does)."""
    if BRIDGED:
        get = _smtfast.lmdb_getter(cursor, nogil)
        if get is not None:
            return get
    plain: Callable[[bytes], bytes | None] = cursor.get
    return plain


def getmulti(cursor: Any, keys: Sequence[bytes], nogil: bool = False) -> list[tuple[bytes, bytes]]:
    """``cursor.getmulti(keys)``: the ``(key, value)`` of the keys found, in order.

    ``nogil``: the lookups run a batch at a time with the GIL released, as py-lmdb's did
    one at a time (other threads run meanwhile) -- only while the caller keeps the
    cursor's txn and environment open and uses the cursor on no other thread (ZapDB:
    under a snapshot's lock)."""
    return getmulti_sized(cursor, keys, nogil)[0]


def getmulti_sized(
    cursor: Any, keys: Sequence[bytes], nogil: bool = False
) -> tuple[list[tuple[bytes, bytes]], int]:
    """:func:`getmulti`, and the sum of the values' lengths (counted in C when bridged)."""
    if BRIDGED:
        got = _smtfast.lmdb_getmulti(cursor, keys, nogil)
        if got is not None:
            pairs, rc, message, size = got
            if rc:
                raise error("mdb_cursor_get()", rc, message)
            return pairs, size
    result: list[tuple[bytes, bytes]] = cursor.getmulti(keys)
    return result, sum(len(v) for _, v in result)
