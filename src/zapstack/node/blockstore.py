"""Finalized blocks and their certs on disk, by height.

Contract
--------
* ``put(height, block, cert)`` writes ``<height>.blk`` and ``<height>.qc``
  through a temp file, fsync and rename, *before* the node commits the block's
  state to ZapDB; so after a crash at any point every height up to ZapDB's
  head has its block (a block file above the head is simply rewritten when
  that height is finalized again).
* ``upgrade_cert`` replaces a height's cert with a stronger one (same block).
* Reads return ``None`` for an unknown height.  Files are immutable once
  written except through ``upgrade_cert``; readers never see a partial file.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BlockStore"]


class BlockStore:
    """A folder of ``<height>.blk`` / ``<height>.qc`` files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, height: int, ext: str) -> Path:
        return self.root / f"{height:012d}.{ext}"

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def put(self, height: int, block: bytes, cert: bytes) -> None:
        """Durably store a finalized block and its cert."""
        self._write(self._path(height, "blk"), block)
        self._write(self._path(height, "qc"), cert)
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def upgrade_cert(self, height: int, cert: bytes) -> None:
        """Replace the cert of a stored height."""
        if self._path(height, "blk").exists():
            self._write(self._path(height, "qc"), cert)

    def block(self, height: int) -> bytes | None:
        """Block bytes at ``height``."""
        try:
            return self._path(height, "blk").read_bytes()
        except FileNotFoundError:
            return None

    def cert(self, height: int) -> bytes | None:
        """Cert bytes at ``height``."""
        try:
            return self._path(height, "qc").read_bytes()
        except FileNotFoundError:
            return None
