"""Every fault halts the node cleanly: at its last committed block, with the reason.

Contract
--------
* Each long-running task of a node runs under :func:`guarded`.  The loops
  handle protocol errors themselves (a bad message is dropped with a
  warning); anything that escapes a loop -- a :class:`FatalStoreError`
  (ZapDB or the block store failed), an ``OSError`` (disk full writing a
  cert upgrade or ``status.json``), a bug -- calls :func:`halt`.
* :func:`halt` (idempotent; the first reason wins) records the reason in
  ``Node.fatal``, frees the disk reserve, logs ``halted at height H: …`` at
  ERROR, writes ``status.json`` with ``halted: true`` and ``fatal`` and
  stops the node.  Nothing is committed after the fault: the commit path
  already discarded the failing txn (LP-0202 failure matrix, "State write
  fails"), and the node stops before it handles another message.  The
  process exits 1 (:func:`zapstack.node.run.run_node`); a restart resumes
  from the last committed block and catches up from its peers.
* The disk reserve (``<home>/reserve.bin``, :data:`RESERVE_BYTES`) is a file
  a node holds from start (:func:`hold_reserve`) so that on a full disk it
  can still write its last log line and status record.  It is recreated at
  the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lmdb

from zapstack.node.status import node_status, write_status

if TYPE_CHECKING:
    from zapstack.node.node import Node

__all__ = ["RESERVE_BYTES", "RESERVE_FILE", "guarded", "halt", "hold_reserve"]

log = logging.getLogger("zapstack.node")

RESERVE_FILE = "reserve.bin"
RESERVE_BYTES = 1 << 20
"""Space kept back for the halt record on a full disk (1 MiB)."""


def hold_reserve(home: Path) -> None:
    """Make sure ``<home>/reserve.bin`` holds :data:`RESERVE_BYTES` (best effort)."""
    path = home / RESERVE_FILE
    with contextlib.suppress(OSError):
        if path.exists() and path.stat().st_size == RESERVE_BYTES:
            return
        with open(path, "wb") as fh:
            fh.write(bytes(RESERVE_BYTES))
            fh.flush()
            os.fsync(fh.fileno())


def describe(exc: BaseException) -> str:
    """One line: the error's type and message (and, for a state store that reached its
    map size, what to do)."""
    text = " ".join(str(exc).split()) or "(no message)"
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, lmdb.MapFullError):
        cause = cause.__cause__
    if cause is not None:
        text += " (the state store reached its size bound: restart with a larger --db-max-gib)"
    return f"{type(exc).__name__}: {text}"


def halt(node: Node, reason: str) -> None:
    """Stop ``node`` at its last committed block, recording ``reason`` (see the contract)."""
    if node.fatal is not None:
        return
    node.fatal = reason
    with contextlib.suppress(OSError):
        (node.home / RESERVE_FILE).unlink()
    log.error("halted at height %d: %s", node.executor.height, reason)
    try:
        write_status(node.home / "status.json", node_status(node))
    except Exception as exc:  # the status record is best effort once the node is failing
        log.error("status.json not written at halt: %s", describe(exc))
    node.stop()


async def guarded(node: Node, coro: Coroutine[Any, Any, None]) -> None:
    """Run one of the node's tasks; an exception escaping it halts the node."""
    name = getattr(coro, "__qualname__", "task")
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        halt(node, f"{name}: {describe(exc)}")
