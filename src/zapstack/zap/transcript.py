"""The cryptographic transcript: a pure function over a frame's typed offsets.

A frame's *signed region* is bytes ``[0, total_length - sig_length)``: the
magic, kind, header, offsets table and every body field -- i.e. exactly the
bytes the typed offsets describe.  The transcript digest is::

    tx:    sha256(b"lux/zap/tx/v1\\x00"    || signed_region)
    block: sha256(b"lux/zap/block/v1\\x00" || signed_region)

The digest is what Sign signs and Verify checks, read straight from the
immutable buffer (hashlib consumes the memoryview; nothing is copied).  A tx's
id is its transcript digest (so a re-signed tx is the same tx); a block's id is
``sha256(block bytes)`` (LP-0202), signature included.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["BLOCK_DOMAIN", "TX_DOMAIN", "block_id", "signed_region_end", "transcript_digest"]

TX_DOMAIN = b"lux/zap/tx/v1\x00"
BLOCK_DOMAIN = b"lux/zap/block/v1\x00"

_TOTAL_AND_SIG = struct.Struct("<I6xH")  # total_length @8..11, sig_length @18..19

Buf = bytes | bytearray | memoryview


def signed_region_end(frame: Buf) -> int:
    """``total_length - sig_length`` read from the header (bytes 8..11 and 18..19)."""
    total, sig_len = _TOTAL_AND_SIG.unpack_from(frame, 8)
    return int(total - sig_len)


def transcript_digest(domain: bytes, frame: Buf, end: int | None = None) -> bytes:
    """sha256(domain || frame[0:end]); ``end`` defaults to the signed-region end."""
    if end is None:
        end = signed_region_end(frame)
    h = hashlib.sha256(domain)
    h.update(memoryview(frame)[:end])
    return h.digest()


def block_id(block: Buf) -> bytes:
    """sha256 over the whole block frame (LP-0202's block identity)."""
    return hashlib.sha256(block).digest()
