"""Finalized blocks and their certs on disk, by height, each file checksummed.

Contract
--------
* ``put(height, block, cert)`` writes ``<height>.blk`` and ``<height>.qc``
  through a temp file, fsync and rename, *before* the node commits the block's
  state to ZapDB; so after a crash at any point every height up to ZapDB's
  head has its block (a block file above the head is simply rewritten when
  that height is finalized again).
* Every file is a 44-byte header (magic ``ZBF1``, payload length, sha256 of
  the payload) and the payload (``docs/formats/blockfiles.md``).  For a
  ``.blk`` file the sha256 is the block id.
* ``upgrade_cert`` replaces a height's cert with a stronger one (same block).
* Reads return ``None`` for an unknown height, and for a file that fails its
  checksum (logged at ERROR: the disk changed a file we wrote).  Files are
  immutable once written except through ``upgrade_cert``; readers never see
  a partial file.
* :meth:`BlockStore.check` (at every start, against ZapDB's head) raises
  :class:`DamagedBlocks` (a :class:`~zapstack.errors.FatalStoreError`, one
  line, with the damaged heights) when a block or cert from the lowest held
  height up to the head is missing, when one of the last
  :data:`CHECKED_AT_START` heights fails its checksum, or when the head block
  is not the block ZapDB's head names.  ``zap node`` then re-fetches those
  heights from its peers (:mod:`zapstack.cli.repair`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from pathlib import Path

from zapstack.errors import FatalStoreError

__all__ = [
    "CHECKED_AT_START",
    "HEADER",
    "MAGIC",
    "BlockStore",
    "DamagedBlocks",
    "decode_file",
    "encode_file",
]

log = logging.getLogger("zapstack.node")

MAGIC = b"ZBF1"
HEADER = struct.Struct("<4sQ32s")
"""magic, payload length (u64 LE), sha256(payload): 44 bytes."""
CHECKED_AT_START = 64
"""The newest heights whose files are read and checksummed at every start."""


def encode_file(payload: bytes) -> bytes:
    """The bytes of a block or cert file holding ``payload``."""
    return HEADER.pack(MAGIC, len(payload), hashlib.sha256(payload).digest()) + payload


def decode_file(data: bytes) -> tuple[bytes, bytes] | None:
    """``(payload, sha256)`` of a file's bytes, or None if the header or checksum is wrong."""
    if len(data) < HEADER.size:
        return None
    magic, length, digest = HEADER.unpack_from(data)
    payload = data[HEADER.size :]
    if magic != MAGIC or length != len(payload) or hashlib.sha256(payload).digest() != digest:
        return None
    return payload, digest


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
            fh.write(encode_file(data))
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

    def _read(self, height: int, ext: str) -> bytes | None:
        path = self._path(height, ext)
        try:
            decoded = decode_file(path.read_bytes())
        except FileNotFoundError:
            return None
        if decoded is None:
            log.error("%s fails its checksum; treated as missing", path)
            return None
        return decoded[0]

    def block(self, height: int) -> bytes | None:
        """Block bytes at ``height``."""
        return self._read(height, "blk")

    def cert(self, height: int) -> bytes | None:
        """Cert bytes at ``height``."""
        return self._read(height, "qc")

    def block_id(self, height: int) -> bytes | None:
        """The id of the block at ``height`` as its file header records it (44 bytes read).

        Not checked against the payload (:meth:`block` checks): an index, not a proof.
        """
        try:
            with open(self._path(height, "blk"), "rb") as fh:
                head = fh.read(HEADER.size)
        except FileNotFoundError:
            return None
        if len(head) < HEADER.size or head[:4] != MAGIC:
            return None
        return bytes(HEADER.unpack(head)[2])

    def damaged(self, head_height: int, head_id: bytes) -> list[tuple[int, str]]:
        """``(height, problem)`` of every damaged height up to the head, oldest first."""
        names = set(os.listdir(self.root))
        held = [int(n[:-4]) for n in names if n.endswith(".blk") and n[:-4].isdigit()]
        lowest = min((h for h in held if h <= head_height), default=head_height)
        out: list[tuple[int, str]] = []
        for h in range(max(1, lowest), head_height + 1):
            for ext in ("blk", "qc"):
                problem = self._problem(h, ext, names, head_height, head_id)
                if problem:
                    out.append((h, problem))
                    break
        return out

    def _problem(self, h: int, ext: str, names: set[str], head_height: int, head_id: bytes) -> str:
        path = self._path(h, ext)
        if path.name not in names:
            return f"{path} is missing (the store's head is height {head_height})"
        if h <= head_height - CHECKED_AT_START:
            return ""
        decoded = decode_file(path.read_bytes())
        if decoded is None:
            return f"{path} is corrupt (header or checksum)"
        if ext == "blk" and h == head_height and decoded[1] != head_id:
            return (
                f"{path} is not the head block ZapDB names "
                f"({decoded[1].hex()[:16]} != {head_id.hex()[:16]})"
            )
        return ""

    def check(self, head_height: int, head_id: bytes) -> None:
        """Raise :class:`DamagedBlocks` if any height up to the head is damaged."""
        problems = self.damaged(head_height, head_id)
        if problems:
            raise DamagedBlocks(problems, head_height, head_id)


class DamagedBlocks(FatalStoreError):
    """Block or cert files up to ZapDB's head are missing or damaged (one line)."""

    def __init__(self, problems: list[tuple[int, str]], head_height: int, head_id: bytes) -> None:
        more = f"; {len(problems) - 1} more damaged heights" if len(problems) > 1 else ""
        super().__init__(
            f"{problems[0][1]}{more}; restore the data folder, or state-sync an empty one"
        )
        self.heights = tuple(h for h, _ in problems)
        self.head_height = head_height
        self.head_id = head_id
