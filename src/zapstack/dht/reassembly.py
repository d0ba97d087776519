"""The block under reassembly: one buffer ``header || payload || trailer`` and its verified chunks.

:class:`~zapstack.dht.chunks.ChunkPull` decides *who* to ask and *whom* to
blame; this module holds *what* has been proven.  :func:`chunk_verifies`
checks one chunk against a layout's commitment (index in range, exact length,
RFC 6962 inclusion proof against ``chunk_root``) before anything is written;
:class:`Reassembly` writes verified chunks at ``header_len + index *
CHUNK_SIZE`` in any order, counts a second copy as a duplicate, and keeps the
chunks already in when a new header commits to the same ``(chunk_root,
payload_len)``.  The whole block is accepted only if ``sha256(buffer)`` equals
the block id.  Single-threaded, no IO.
"""

from __future__ import annotations

import hashlib

from zapstack.dht.blocks import BlockLayout
from zapstack.dht.messages import ChunkMsg
from zapstack.zap.merkle import CHUNK_SIZE, chunk_count, leaf_hash, verify_inclusion

__all__ = ["Reassembly", "chunk_verifies"]


def chunk_verifies(layout: BlockLayout, msg: ChunkMsg) -> bool:
    """Whether ``msg`` is chunk ``msg.index`` of the payload ``layout`` commits to."""
    n = chunk_count(layout.payload_len)
    expected = min(CHUNK_SIZE, layout.payload_len - msg.index * CHUNK_SIZE)
    return (
        msg.index < n
        and len(msg.data) == expected
        and verify_inclusion(leaf_hash(msg.data), msg.index, n, msg.proof, layout.chunk_root)
    )


class Reassembly:
    """One block's buffer and the set of chunk indices verified into it."""

    __slots__ = ("_hlen", "_key", "buf", "have")

    def __init__(self) -> None:
        self.buf: bytearray | None = None
        """``header || payload || trailer`` once a header was adopted."""
        self.have: set[int] = set()
        """Chunk indices verified and written under the current commitment."""
        self._key: tuple[bytes, int] | None = None
        self._hlen = 0

    def adopt(self, header: bytes, layout: BlockLayout, trailer: bytes) -> None:
        """Lay the buffer out for ``layout``; chunks under the same commitment stay."""
        key = (layout.chunk_root, layout.payload_len)
        if self.buf is not None and self._key == key:  # same commitment: keep chunks
            payload = self.buf[self._hlen : self._hlen + layout.payload_len]
            self.buf = bytearray(header) + payload + trailer
        else:
            self.buf = bytearray(header) + bytearray(layout.payload_len) + trailer
            self.have = set()
        self._key, self._hlen = key, layout.header_len

    def insert(self, layout: BlockLayout, msg: ChunkMsg) -> bool:
        """Write a chunk that :func:`chunk_verifies`; False (nothing written) if held already."""
        assert self.buf is not None
        if msg.index in self.have:
            return False
        at = layout.header_len + msg.index * CHUNK_SIZE
        self.buf[at : at + len(msg.data)] = msg.data
        self.have.add(msg.index)
        return True

    def block(self, block_id: bytes) -> bytes | None:
        """The whole block if ``sha256(buffer) == block_id``, else None."""
        assert self.buf is not None
        if hashlib.sha256(self.buf).digest() == block_id:
            return bytes(self.buf)
        return None
