"""Byte-exact messages of the bootstrap streams (``docs/formats/bootstrap.md``).

Five stream types of the transport table carry the bootstrap pipeline:

=============== ==== ============================================================
stream          kind content (after the type byte)
=============== ==== ============================================================
STATE_CHUNK     bi   request: root, depth, start, count -> reply: chunk records
HEADER_RANGE    bi   request: flags, start, count -> reply: head, block records
BLOCK_PUSH      uni  one block ZAP frame then its QuasarCert; FIN
MEMPOOL_GOSSIP  uni  tx ZAP frames back to back; FIN
VOTE            uni  ``u32 len | record`` back to back, long-lived
=============== ==== ============================================================

All integers are unsigned little-endian.  This module holds the limits and
flags, the two requests (whole before FIN: ``encode_*`` / ``decode_*``) and
the encoders of the records servers write.  Replies and pushes are parsed
*incrementally* by :mod:`zapstack.bootstrap.readers`.  Any malformed input
raises :class:`~zapstack.errors.RemoteProtocolError` with the wire code to
reset the stream with and the byte offset (from the first byte after the type
byte) that proved it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.zapdb.proofs import MAX_CHUNK_DEPTH, StateChunk

try:
    from zapstack.zapdb import _smtfast
except ImportError:  # pragma: no cover - the extension is optional
    _smtfast = None  # type: ignore[assignment]

__all__ = [
    "CERTS_ONLY",
    "LATEST",
    "MAX_BATCH",
    "MAX_CERT_LEN",
    "MAX_CHUNK_RECORD",
    "MAX_RANGE",
    "MAX_RANGE_REPLY",
    "MAX_STATE_REPLY",
    "MAX_VOTE_LEN",
    "SUB_BLOCKS",
    "SUB_MEMPOOL",
    "SUB_VOTES",
    "VERSION",
    "RangeRequest",
    "StateRequest",
    "decode_range_request",
    "decode_state_request",
    "encode_chunk",
    "encode_chunk_py",
    "encode_range_record",
    "encode_range_request",
    "encode_state_request",
    "encode_vote",
]

VERSION = 1
"""First byte of every bootstrap request."""
MAX_BATCH = 1024
"""Chunks one STATE_CHUNK request may ask for."""
MAX_RANGE = 256
"""Blocks one HEADER_RANGE request may ask for."""
MAX_CHUNK_RECORD = 1 << 24
"""Largest chunk record body (16 MiB)."""
MAX_STATE_REPLY = 1 << 24
"""Most record-body bytes a server puts in one STATE_CHUNK reply (16 MiB, so any legal
record fits alone): a request whose chunks pass it is refused (``INTERNAL``), and the
server stops building the reply there."""
MAX_RANGE_REPLY = 1 << 24
"""Bytes past which a server ends a HEADER_RANGE reply early (16 MiB; the first record is
always sent): the client asks the rest again, as after any early end."""
MAX_CERT_LEN = 1 << 26
"""Largest QuasarCert carried in a range record or a block push (64 MiB)."""
MAX_VOTE_LEN = 1 << 16
"""Largest vote record."""
LATEST = (1 << 64) - 1
"""HEADER_RANGE ``start`` meaning "the last ``count`` finalized blocks"."""
SUB_BLOCKS, SUB_MEMPOOL, SUB_VOTES = 0x01, 0x02, 0x04
"""HEADER_RANGE ``flags``: subscribe to live blocks / mempool gossip / votes."""
_SUB_ALL = SUB_BLOCKS | SUB_MEMPOOL | SUB_VOTES
CERTS_ONLY = 0x80
"""HEADER_RANGE ``flags`` bit 7: records carry the cert only (``block_len = 0``, no block)."""
_FLAGS_ALL = _SUB_ALL | CERTS_ONLY

_STATE_REQ = struct.Struct("<B32sBII")  # 42 bytes
_RANGE_REQ = struct.Struct("<BBQI")  # 14 bytes
_U8, _U16, _U32 = (struct.Struct(f) for f in ("<B", "<H", "<I"))


def _bad(msg: str, code: WireCode, offset: int) -> RemoteProtocolError:
    return RemoteProtocolError(msg, code=code, offset=offset)


# ---------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class StateRequest:
    """STATE_CHUNK request: chunks ``start .. start+count-1`` of ``2**depth`` at ``root``."""

    root: bytes
    """Target state root (32 bytes)."""
    depth: int
    """Chunk depth: the key-hash space is split into ``2**depth`` chunks."""
    start: int
    """First chunk index."""
    count: int
    """Number of consecutive chunks (1..MAX_BATCH)."""


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """HEADER_RANGE request."""

    flags: int
    """Subscription bits (SUB_BLOCKS | SUB_MEMPOOL | SUB_VOTES)."""
    start: int
    """First height, or LATEST."""
    count: int
    """Blocks wanted (0..MAX_RANGE)."""


def encode_state_request(req: StateRequest) -> bytes:
    """The 42 request bytes."""
    return _STATE_REQ.pack(VERSION, req.root, req.depth, req.start, req.count)


def decode_state_request(data: bytes) -> StateRequest:
    """Parse a whole STATE_CHUNK request (RemoteProtocolError on any defect)."""
    if len(data) < _STATE_REQ.size:
        raise _bad("state request truncated", WireCode.TRUNCATED, len(data))
    if len(data) > _STATE_REQ.size:
        raise _bad("bytes after the state request", WireCode.TRAILING_DATA, _STATE_REQ.size)
    version, root, depth, start, count = _STATE_REQ.unpack(data)
    if version != VERSION:
        raise _bad("unknown request version", WireCode.BAD_VERSION, 0)
    if depth > MAX_CHUNK_DEPTH:
        raise _bad("chunk depth too large", WireCode.BAD_FIELD, 33)
    if not 1 <= count <= MAX_BATCH:
        raise _bad("chunk count out of range", WireCode.BAD_FIELD, 38)
    if start + count > 1 << depth:
        raise _bad("chunk range past the last chunk", WireCode.BAD_FIELD, 34)
    return StateRequest(root, depth, start, count)


def encode_range_request(req: RangeRequest) -> bytes:
    """The 14 request bytes."""
    return _RANGE_REQ.pack(VERSION, req.flags, req.start, req.count)


def decode_range_request(data: bytes) -> RangeRequest:
    """Parse a whole HEADER_RANGE request."""
    if len(data) < _RANGE_REQ.size:
        raise _bad("range request truncated", WireCode.TRUNCATED, len(data))
    if len(data) > _RANGE_REQ.size:
        raise _bad("bytes after the range request", WireCode.TRAILING_DATA, _RANGE_REQ.size)
    version, flags, start, count = _RANGE_REQ.unpack(data)
    if version != VERSION:
        raise _bad("unknown request version", WireCode.BAD_VERSION, 0)
    if flags & ~_FLAGS_ALL:
        raise _bad("unknown subscription flag", WireCode.BAD_FLAGS, 1)
    if count > MAX_RANGE:
        raise _bad("range count too large", WireCode.BAD_FIELD, 10)
    return RangeRequest(flags, start, count)


# ---------------------------------------------------------------- records out


def encode_chunk(chunk: StateChunk) -> bytes:
    """One chunk record: ``u32 body_len | body`` (see the format doc).

    One call of the C extension when it is built (one buffer, no per-entry objects);
    :func:`encode_chunk_py` is the readable reference, which tests hold equal."""
    if _smtfast is not None:
        return _smtfast.encode_chunk(chunk.index, chunk.entries, chunk.siblings, chunk.terminal)
    return encode_chunk_py(chunk)


def encode_chunk_py(chunk: StateChunk) -> bytes:
    """:func:`encode_chunk` in pure Python (the reference)."""
    parts = [_U32.pack(chunk.index), _U32.pack(len(chunk.entries))]
    for key, value in chunk.entries:
        parts += (_U16.pack(len(key)), key, _U32.pack(len(value)), value)
    parts += (_U8.pack(len(chunk.siblings)), *chunk.siblings)
    if chunk.terminal is None:
        parts.append(b"\x00")
    else:
        parts += (b"\x01", chunk.terminal)
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def encode_range_record(block: bytes, cert: bytes) -> bytes:
    """``u32 block_len | block | u32 cert_len | cert``."""
    return b"".join((_U32.pack(len(block)), block, _U32.pack(len(cert)), cert))


def encode_vote(record: bytes) -> bytes:
    """``u32 len | record`` (1..MAX_VOTE_LEN bytes)."""
    return _U32.pack(len(record)) + record
