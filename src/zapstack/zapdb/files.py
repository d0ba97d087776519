"""Checks of a ZapDB directory before and while it is opened.

* :func:`check_files` -- ``data.mdb``'s two LMDB meta pages are read by hand before
  LMDB maps the file (a page beyond the end of a truncated file is a SIGBUS on first
  access, not an error): magic, version, page size and that the file holds every page
  the newest commit uses.  A missing file is a new store.
* :func:`check_layout` -- the store's on-disk layout (``meta/layout``): an empty store
  is stamped with :data:`LAYOUT`; a store written by layout v1 (no stamp, depth-first
  tree-node keys) or an unknown layout is refused with a one-line reason.

Both answer with a reason, never a partial repair; :meth:`.store.ZapDB.open` turns a
reason into :class:`~zapstack.errors.FatalStoreError`.  Pure functions of the files
and the given LMDB txn; no state.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from zapstack.errors import FatalStoreError

__all__ = ["LAYOUT", "check_files", "check_layout"]

LAYOUT = 2
"""On-disk layout version (``meta/layout``, one byte): 2 = path-ordered node keys."""
_LAYOUT = b"layout"
_VERSION = b"version"

_META_HEAD = struct.Struct("<II")
"""LMDB's ``MDB_meta`` (lmdb 0.9 ``mdb.c``, 64-bit), after the 16-byte page header:
``mm_magic``, ``mm_version``; ``mm_psize`` (``mm_dbs[FREE_DBI].md_pad``) is the u32 at
offset 24; ``mm_last_pg`` and ``mm_txnid`` are the u64s at offset 120 (:data:`_META_TAIL`)."""
_META_TAIL = struct.Struct("<QQ")
_PAGE_HEADER = 16
_LMDB_MAGIC = 0xBEEFC0DE


def _meta(raw: bytes, at: int) -> tuple[int, int, int] | None:
    """``(psize, last_pg, txnid)`` of the meta page at byte ``at``, or None if it is not one."""
    meta = at + _PAGE_HEADER
    if len(raw) < meta + 136:
        return None
    magic, version = _META_HEAD.unpack_from(raw, meta)
    (psize,) = struct.unpack_from("<I", raw, meta + 24)
    last_pg, txnid = _META_TAIL.unpack_from(raw, meta + 120)
    if magic != _LMDB_MAGIC or version != 1 or psize < 512 or psize & (psize - 1):
        return None
    return psize, last_pg, txnid


def check_files(path: str | os.PathLike[str]) -> None:
    """Check ``<path>/data.mdb`` before LMDB maps it (a short file would SIGBUS on access).

    Both meta pages must carry LMDB's magic and version, and the file must hold every
    page up to the newest meta's ``last_pg``.  A missing file is a new store.  Raises
    FatalStoreError with one line naming the file and what is wrong.
    """
    data = os.path.join(os.fspath(path), "data.mdb")
    try:
        with open(data, "rb") as fh:
            head = fh.read(4096 + _PAGE_HEADER + 136)
            size = os.fstat(fh.fileno()).st_size
            first = _meta(head, 0)
            if first is not None and first[0] != 4096:
                fh.seek(first[0])
                head = head[: first[0]] + fh.read(_PAGE_HEADER + 136)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise FatalStoreError(f"cannot read {data}: {exc.strerror}") from None
    if first is None:
        raise FatalStoreError(f"{data} is not an LMDB file or its first meta page is corrupt")
    second = _meta(head, first[0])
    if second is None:
        raise FatalStoreError(f"{data} is truncated or its second meta page is corrupt")
    psize, last_pg, _ = max(first, second, key=lambda m: m[2])
    need = (last_pg + 1) * psize
    if size < need:
        raise FatalStoreError(
            f"{data} is truncated: {size} bytes, but its last commit uses {need} "
            f"(page {last_pg} of {psize} bytes); restore the data folder or state-sync"
        )


def check_layout(txn: Any, dbs: tuple[Any, Any, Any]) -> str | None:
    """Why the store open in write txn ``txn`` cannot be used (None: it can).  A store
    with nothing in it is stamped with :data:`LAYOUT`; one with data or commits but no
    ``meta/layout`` was written by layout v1 (depth-first node keys)."""
    raw = txn.get(_LAYOUT, db=dbs[2])
    if raw is None:
        used = txn.get(_VERSION, db=dbs[2]) is not None or any(
            txn.stat(db)["entries"] for db in dbs[:2]
        )
        if used:
            return (
                "layout v1 (depth-first tree-node keys) is not readable by this version, "
                f"which uses layout v{LAYOUT}: re-sync the state or restore from a backup"
            )
        txn.put(_LAYOUT, bytes((LAYOUT,)), db=dbs[2])
        return None
    if raw != bytes((LAYOUT,)):
        return f"unknown layout {raw.hex()} (this version reads layout v{LAYOUT} only)"
    return None
