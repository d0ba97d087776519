"""A node's data folder: usable, locked, bound to one chain -- checked before any write.

Contract
--------
* :func:`check_home` refuses a missing home, a home that is not a folder and
  one the process cannot write (a read-only mount), with one line each.
* :class:`HomeLock` takes an exclusive ``flock`` on the home folder itself
  (no lock file: taking it writes nothing).  A second ``zap node`` on the
  same home fails at once; the kernel drops the lock when the process dies,
  so a SIGKILLed node leaves no stale lock.
* ``<home>/chain.json`` (``docs/formats/genesis.md`` §3) binds the data to its
  chain: :func:`check_chain` compares it with the genesis being launched
  (a mismatch is one line naming both chains, and nothing is written);
  :func:`record_chain` writes it at first start (temp file, fsync, rename).
  A data folder that already holds a ZapDB but no ``chain.json`` (made
  before this check existed) is adopted by the genesis it is started with.
* All of these raise :class:`~zapstack.errors.ConfigError` (``zap node``:
  exit 2, one line).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
from pathlib import Path

from zapstack.errors import ConfigError
from zapstack.node.genesis import Genesis
from zapstack.verify import apply_genesis
from zapstack.verify.executor import HEAD_HEIGHT_META, HEAD_ID_META
from zapstack.zapdb import ZapDB

__all__ = ["CHAIN_FILE", "HomeLock", "check_chain", "check_home", "record_chain"]

CHAIN_FILE = "chain.json"
"""The data folder's chain binding: ``{"chain_id": int, "genesis_id": hex}``."""


def check_home(home: Path) -> None:
    """Refuse a missing home, a file, or a home this process cannot write."""
    if not home.exists():
        raise ConfigError(f"node home {home} does not exist (create it with its node.json)")
    if not home.is_dir():
        raise ConfigError(f"node home {home} is not a folder")
    if not os.access(home, os.W_OK | os.X_OK):
        raise ConfigError(f"node home {home} is not writable (read-only mount or permissions)")


class HomeLock:
    """An exclusive lock on a node home, held until :meth:`release` or process exit."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._fd: int | None = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise ConfigError(
                f"node home {home} is in use by another zap node (its folder lock is held)"
            ) from None

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the only descriptor releases the flock


def _describe(chain_id: int, genesis_id: str) -> str:
    return f"chain {chain_id:#x} (genesis {genesis_id[:16]}...)"


def check_chain(home: Path, g: Genesis) -> bool:
    """Check ``home`` belongs to ``g``'s chain; True when ``chain.json`` must be written."""
    path = home / CHAIN_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        chain_id, genesis_id = int(raw["chain_id"]), str(raw["genesis_id"])
    except FileNotFoundError:
        return True
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is unreadable ({exc}); the data folder's chain is unknown"
        ) from None
    if chain_id != g.chain_id or genesis_id != g.genesis_id.hex():
        raise ConfigError(
            f"data folder {home} holds {_describe(chain_id, genesis_id)}, but genesis.json "
            f"is {_describe(g.chain_id, g.genesis_id.hex())}; refusing to start"
        )
    return False


def record_chain(home: Path, g: Genesis) -> None:
    """Write ``chain.json`` for ``g`` durably."""
    path = home / CHAIN_FILE
    tmp = path.with_suffix(".tmp")
    body = json.dumps({"chain_id": g.chain_id, "genesis_id": g.genesis_id.hex()})
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(body + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_genesis_state(db: ZapDB, g: Genesis) -> None:
    """Write ``g``'s allocations and the genesis head into an empty ZapDB (else nothing)."""
    if db.meta_get(HEAD_HEIGHT_META) is not None:
        return
    txn = db.begin()
    try:
        apply_genesis(txn, g.allocations)
        txn.meta_set(HEAD_HEIGHT_META, struct.pack("<Q", 0))
        txn.meta_set(HEAD_ID_META, g.genesis_id)
        txn.commit()
    finally:
        txn.discard()
