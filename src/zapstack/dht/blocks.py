"""Block layout for chunk transfer, the synthetic block shape, and the serving side.

* :class:`BlockLayout` is all the pull logic needs from a header:
  ``header_len``, ``payload_len`` and ``chunk_root`` (the Merkle root over the
  payload's 64 KiB chunks).  A *layout function* maps header bytes to it and
  raises :class:`~zapstack.errors.RemoteProtocolError` for a malformed header.
  Real ZAP block frames plug in their own function once the frame codec
  exposes the chunk root and payload offsets; until then (and in the vectors)
  the **synthetic** header shape below is used, as documented in
  ``docs/formats/chunks.md`` §Synthetic blocks:

  ``"ZSYN" | u32 LE header_len | u64 LE payload_len | chunk_root[32] | filler``

* :func:`expand` is the documented deterministic byte generator used to
  synthesise block bytes from a 32-byte seed (no language-specific RNG).
* :class:`ServedBlock` is a provider's read-only view of a block it holds:
  it answers GET_HEADER and GET_CHUNK with inclusion proofs (computed once).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from zapstack.dht.messages import ChunkMsg, HeaderMsg
from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode
from zapstack.zap.merkle import (
    CHUNK_SIZE,
    chunk_slices,
    inclusion_proof,
    leaf_hash,
    root_of_leaf_hashes,
)
from zapstack.zap.schema import BLOCK_SCHEMA, MAGIC, FrameKind

__all__ = [
    "SYN_FIXED_LEN",
    "SYN_MAGIC",
    "BlockLayout",
    "ServedBlock",
    "expand",
    "synthetic_block",
    "synthetic_layout",
    "zap_block_layout",
]

SYN_MAGIC = b"ZSYN"
"""First four bytes of a synthetic block header."""
SYN_FIXED_LEN = 48
"""Bytes of a synthetic header before its filler."""
_SYN = struct.Struct("<4sIQ32s")


@dataclass(frozen=True, slots=True)
class BlockLayout:
    """Where a block's payload is and what commits to it."""

    header_len: int
    """Bytes of the header prefix (the payload starts here)."""
    payload_len: int
    """Bytes of the payload (chunked in 64 KiB pieces, last one shorter)."""
    chunk_root: bytes
    """Merkle root over leaf_hash(chunk_i) of the payload."""
    trailer_len: int = 0
    """Bytes after the payload (a ZAP block frame's signature; 0 for synthetic blocks)."""


def expand(seed: bytes, n: int) -> bytes:
    """``sha256(seed || u32le(0)) || sha256(seed || u32le(1)) || ...`` cut to ``n`` bytes."""
    blocks = (n + 31) // 32
    return b"".join(hashlib.sha256(seed + struct.pack("<I", i)).digest() for i in range(blocks))[:n]


def synthetic_layout(header: bytes) -> BlockLayout:
    """Parse a synthetic header; RemoteProtocolError (BAD_MAGIC / BAD_LENGTH) if malformed."""
    if len(header) < SYN_FIXED_LEN:
        raise RemoteProtocolError("synthetic header too short", code=WireCode.BAD_LENGTH)
    magic, hlen, plen, root = _SYN.unpack_from(header)
    if magic != SYN_MAGIC:
        raise RemoteProtocolError("not a synthetic header", code=WireCode.BAD_MAGIC, offset=0)
    if hlen != len(header):
        raise RemoteProtocolError("header_len field != header size", code=WireCode.BAD_LENGTH)
    return BlockLayout(int(hlen), int(plen), bytes(root))


def zap_block_layout(prefix: bytes) -> BlockLayout:
    """Layout of a ZAP block frame from its header prefix (``docs/formats/zap.md``).

    The prefix is bytes ``[0, payload start)``: the 21-byte frame header, the
    offsets table and every field before ``payload``.  Only structure is
    checked here (magic, kind 0xB1, field count, offsets); the block's
    signature and roots are checked when the whole block is parsed.
    """
    schema = BLOCK_SCHEMA
    n = len(schema.fields)
    if len(prefix) < schema.table_end:
        raise RemoteProtocolError("block prefix too short", code=WireCode.TRUNCATED)
    if prefix[:4] != MAGIC:
        raise RemoteProtocolError("not a ZAP frame", code=WireCode.BAD_MAGIC, offset=0)
    if prefix[4] != FrameKind.BLOCK:
        raise RemoteProtocolError("not a block frame", code=WireCode.UNKNOWN_KIND, offset=4)
    total, _chain, count, sig_len = struct.unpack_from("<IIHH", prefix, 8)
    if count != n:
        raise RemoteProtocolError("field count", code=WireCode.BAD_FIELD_COUNT, offset=16)
    ends = struct.unpack_from(f"<{n}I", prefix, 21)
    ip, ic = schema.index["payload"], schema.index["chunk_root"]
    start = ends[ip - 1]
    c0 = ends[ic - 1]
    if start != len(prefix) or not c0 + 32 == ends[ic] <= start:
        raise RemoteProtocolError("prefix does not end at the payload", code=WireCode.BAD_LENGTH)
    if not start <= ends[ip] == total - sig_len:
        raise RemoteProtocolError("payload / signature bounds", code=WireCode.OFFSET_OVERRUN)
    return BlockLayout(start, ends[ip] - start, bytes(prefix[c0 : c0 + 32]), sig_len)


def synthetic_block(seed: bytes, header_len: int, payload_len: int) -> bytes:
    """The synthetic block of ``docs/formats/chunks.md``: header then payload.

    payload = expand(seed || b"payload", payload_len); filler =
    expand(seed || b"filler", header_len - 48).
    """
    if header_len < SYN_FIXED_LEN:
        raise LocalProtocolError(f"header_len must be >= {SYN_FIXED_LEN}")
    payload = expand(seed + b"payload", payload_len)
    root = root_of_leaf_hashes([leaf_hash(c) for c in chunk_slices(payload)])
    fixed = _SYN.pack(SYN_MAGIC, header_len, payload_len, root)
    return fixed + expand(seed + b"filler", header_len - SYN_FIXED_LEN) + payload


class ServedBlock:
    """A held block, answering HEADER and CHUNK requests (never copies the payload)."""

    __slots__ = ("_leaves", "_proofs", "block", "block_id", "layout")

    def __init__(self, block: bytes, layout: BlockLayout) -> None:
        self.block = block
        self.block_id = hashlib.sha256(block).digest()
        self.layout = layout
        if len(block) != layout.header_len + layout.payload_len + layout.trailer_len:
            raise LocalProtocolError("block size does not match its layout")
        payload = memoryview(block)[layout.header_len : layout.header_len + layout.payload_len]
        self._leaves = [leaf_hash(c) for c in chunk_slices(payload)]
        if root_of_leaf_hashes(self._leaves) != layout.chunk_root:
            raise LocalProtocolError("block payload does not match its chunk root")
        self._proofs: dict[int, tuple[bytes, ...]] = {}

    @property
    def chunk_count(self) -> int:
        """Number of payload chunks."""
        return len(self._leaves)

    def header_msg(self) -> HeaderMsg:
        """The HEADER response: the prefix and the trailer."""
        lay = self.layout
        trailer = self.block[lay.header_len + lay.payload_len :]
        return HeaderMsg(self.block_id, self.block[: lay.header_len], trailer)

    def chunk_msg(self, index: int) -> ChunkMsg:
        """The CHUNK response for ``index``; RemoteProtocolError(NOT_FOUND) if out of range."""
        if not 0 <= index < len(self._leaves):
            raise RemoteProtocolError(f"no chunk {index}", code=WireCode.NOT_FOUND)
        proof = self._proofs.get(index)
        if proof is None:
            proof = self._proofs[index] = tuple(inclusion_proof(self._leaves, index))
        at = self.layout.header_len + index * CHUNK_SIZE
        end = min(at + CHUNK_SIZE, self.layout.header_len + self.layout.payload_len)
        return ChunkMsg(self.block_id, index, self.block[at:end], proof)
