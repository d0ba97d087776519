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

All integers are unsigned little-endian.  Requests are whole before FIN;
replies and pushes are parsed *incrementally* by the readers below: feed
bytes with ``receive_data`` in any split, take complete records with
``next_record``, call ``end_of_stream`` at FIN.  Any malformed input raises
:class:`~zapstack.errors.RemoteProtocolError` with the wire code to reset the
stream with and the byte offset (from the first byte after the type byte)
that proved it.  Every reader is fed whole and byte-at-a-time by the tests.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Generic, TypeVar

from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.zap.schema import MAGIC, MAX_BLOCK_SIZE, MAX_TX_SIZE
from zapstack.zapdb.proofs import MAX_CHUNK_DEPTH, StateChunk
from zapstack.zapdb.txn import MAX_KEY_LEN

__all__ = [
    "CERTS_ONLY",
    "LATEST",
    "MAX_BATCH",
    "MAX_CERT_LEN",
    "MAX_CHUNK_RECORD",
    "MAX_RANGE",
    "MAX_VOTE_LEN",
    "SUB_BLOCKS",
    "SUB_MEMPOOL",
    "SUB_VOTES",
    "VERSION",
    "BlockPushReader",
    "ChunkReplyReader",
    "RangeRecord",
    "RangeReplyReader",
    "RangeRequest",
    "StateRequest",
    "TxGossipReader",
    "VoteReader",
    "decode_range_request",
    "decode_state_request",
    "encode_chunk",
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
_U8, _U16, _U32, _U64 = (struct.Struct(f) for f in ("<B", "<H", "<I", "<Q"))
_ZAP_TOTAL = struct.Struct("<I")  # ZAP frame total_length at bytes 8..11


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
    """One chunk record: ``u32 body_len | body`` (see the format doc)."""
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


# ---------------------------------------------------------------- readers

T = TypeVar("T")


class _Reader(Generic[T]):
    """Accumulates a stream; ``_parse(buf, at)`` returns ``(record, end)`` or None."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # consumed bytes in _buf
        self._base = 0  # stream offset of _buf[0]
        self.records = 0
        """Records returned so far."""

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a returned record."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append stream bytes."""
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._base += self._pos
            self._pos = 0
        self._buf += data

    def next_record(self) -> T | None:
        """The next complete record, or None until more bytes arrive."""
        got = self._parse(self._buf, self._pos)
        if got is None:
            return None
        record, end = got
        self._pos = end
        self.records += 1
        return record

    def end_of_stream(self) -> None:
        """FIN: leftover bytes are a truncated record."""
        if self.buffered:
            raise _bad(
                "stream ended inside a record", WireCode.TRUNCATED, self._off(len(self._buf))
            )

    def _off(self, at: int) -> int:
        return self._base + at

    def _parse(self, buf: bytearray, at: int) -> tuple[T, int] | None:
        raise NotImplementedError


def _length(buf: bytearray, at: int, fmt: struct.Struct) -> int | None:
    return fmt.unpack_from(buf, at)[0] if len(buf) >= at + fmt.size else None


class ChunkReplyReader(_Reader[StateChunk]):
    """STATE_CHUNK reply: chunk records for ``start .. start+count-1`` in order."""

    def __init__(self, depth: int, start: int, count: int) -> None:
        super().__init__()
        self.depth, self.start, self.count = depth, start, count

    def end_of_stream(self) -> None:
        super().end_of_stream()
        if self.records != self.count:
            raise _bad(
                "reply ended before its last chunk", WireCode.TRUNCATED, self._off(self._pos)
            )

    def _parse(self, buf: bytearray, at: int) -> tuple[StateChunk, int] | None:
        if self.records >= self.count and len(buf) > at:
            raise _bad("chunk record after the last one", WireCode.TRAILING_DATA, self._off(at))
        n = _length(buf, at, _U32)
        if n is None:
            return None
        if not 10 <= n <= MAX_CHUNK_RECORD:
            raise _bad("chunk record length out of range", WireCode.BAD_LENGTH, self._off(at))
        if len(buf) < at + 4 + n:
            return None
        end = at + 4 + n
        mv = memoryview(buf)[at + 4 : end]
        try:
            return self._body(bytes(mv), self._off(at + 4)), end
        finally:
            mv.release()

    def _body(self, body: bytes, base: int) -> StateChunk:
        def need(pos: int, size: int) -> None:
            if pos + size > len(body):
                raise _bad("chunk record truncated", WireCode.TRUNCATED, base + len(body))

        index, n_entries = struct.unpack_from("<II", body, 0)
        if index != self.start + self.records:
            raise _bad("chunk index out of order", WireCode.BAD_FIELD, base)
        pos = 8
        entries: list[tuple[bytes, bytes]] = []
        for _ in range(n_entries):
            need(pos, 2)
            klen = _U16.unpack_from(body, pos)[0]
            if not 1 <= klen <= MAX_KEY_LEN:
                raise _bad("key length out of range", WireCode.BAD_LENGTH, base + pos)
            need(pos + 2, klen + 4)
            key = body[pos + 2 : pos + 2 + klen]
            pos += 2 + klen
            vlen = _U32.unpack_from(body, pos)[0]
            need(pos + 4, vlen)
            entries.append((key, body[pos + 4 : pos + 4 + vlen]))
            pos += 4 + vlen
        need(pos, 1)
        n_sib = body[pos]
        if n_sib > self.depth:
            raise _bad("more siblings than the depth", WireCode.BAD_FIELD_COUNT, base + pos)
        need(pos + 1, 32 * n_sib + 1)
        siblings = tuple(body[pos + 1 + 32 * i : pos + 33 + 32 * i] for i in range(n_sib))
        pos += 1 + 32 * n_sib
        flag = body[pos]
        terminal: bytes | None = None
        if flag == 1:
            need(pos + 1, 64)
            terminal = body[pos + 1 : pos + 65]
            pos += 65
        elif flag == 0:
            pos += 1
        else:
            raise _bad("terminal flag must be 0 or 1", WireCode.BAD_FLAGS, base + pos)
        if pos != len(body):
            raise _bad("bytes after the chunk record", WireCode.TRAILING_DATA, base + pos)
        return StateChunk(self.depth, index, tuple(entries), siblings, terminal)


@dataclass(frozen=True, slots=True)
class RangeRecord:
    """One finalized block and its certificate from a HEADER_RANGE reply or a push."""

    block: bytes
    """Block ZAP frame bytes."""
    cert: bytes
    """Its QuasarCert bytes."""


class RangeReplyReader(_Reader["int | RangeRecord"]):
    """HEADER_RANGE reply: first ``head`` (an int), then :class:`RangeRecord` s.

    With ``certs_only`` (the request had :data:`CERTS_ONLY`) every record's
    ``block_len`` must be 0 and :attr:`RangeRecord.block` is ``b""``.
    """

    def __init__(self, count: int, *, certs_only: bool = False) -> None:
        super().__init__()
        self.count = count
        self.certs_only = certs_only

    def _parse(self, buf: bytearray, at: int) -> tuple[int | RangeRecord, int] | None:
        if self.records == 0:
            head = _length(buf, at, _U64)
            return None if head is None else (head, at + 8)
        if self.records > self.count and len(buf) > at:
            raise _bad("block record after the last one", WireCode.TRAILING_DATA, self._off(at))
        blen = _length(buf, at, _U32)
        if blen is None:
            return None
        low, high = (0, 0) if self.certs_only else (1, MAX_BLOCK_SIZE)
        if not low <= blen <= high:
            raise _bad("block length out of range", WireCode.BAD_LENGTH, self._off(at))
        clen = _length(buf, at + 4 + blen, _U32)
        if clen is None:
            return None
        if clen > MAX_CERT_LEN:
            raise _bad("cert length out of range", WireCode.BAD_LENGTH, self._off(at + 4 + blen))
        end = at + 8 + blen + clen
        if len(buf) < end:
            return None
        block = bytes(buf[at + 4 : at + 4 + blen])
        return RangeRecord(block, bytes(buf[at + 8 + blen : end])), end

    def end_of_stream(self) -> None:
        super().end_of_stream()
        if self.records == 0:
            raise _bad("reply ended before the head height", WireCode.TRUNCATED, 0)


def _frame_length(buf: bytearray, at: int, limit: int, base: int) -> int | None:
    """total_length of the ZAP frame at ``at`` (magic checked byte by byte), or None."""
    have = min(len(buf) - at, 4)
    if bytes(buf[at : at + have]) != MAGIC[:have]:
        first = next(i for i in range(have) if buf[at + i] != MAGIC[i])
        raise _bad("not a ZAP frame", WireCode.BAD_MAGIC, base + first)
    if len(buf) < at + 12:
        return None
    total: int = _ZAP_TOTAL.unpack_from(buf, at + 8)[0]
    if not 21 <= total <= limit:
        raise _bad("frame length out of range", WireCode.BAD_LENGTH, base + 8)
    return total


class BlockPushReader(_Reader[RangeRecord]):
    """BLOCK_PUSH: one block frame (self-delimiting) then the cert up to FIN."""

    def __init__(self) -> None:
        super().__init__()
        self._ended = False

    def _parse(self, buf: bytearray, at: int) -> tuple[RangeRecord, int] | None:
        if self.records:
            if len(buf) > at:
                raise _bad("bytes after the push", WireCode.TRAILING_DATA, self._off(at))
            return None
        total = _frame_length(buf, at, MAX_BLOCK_SIZE, self._off(at))
        if total is not None and len(buf) - at - total > MAX_CERT_LEN:
            raise _bad("cert too long", WireCode.BAD_LENGTH, self._off(at + total + MAX_CERT_LEN))
        if total is None or not self._ended or len(buf) < at + total:
            return None
        return RangeRecord(bytes(buf[at : at + total]), bytes(buf[at + total :])), len(buf)

    def finish(self) -> RangeRecord:
        """After FIN: the pushed record (RemoteProtocolError if incomplete)."""
        self._ended = True
        record = self.next_record()
        if record is None:
            raise _bad(
                "push ended inside the block frame", WireCode.TRUNCATED, self._off(len(self._buf))
            )
        return record


class TxGossipReader(_Reader[bytes]):
    """MEMPOOL_GOSSIP: tx ZAP frames back to back, each delimited by its total_length."""

    def _parse(self, buf: bytearray, at: int) -> tuple[bytes, int] | None:
        if len(buf) == at:
            return None
        total = _frame_length(buf, at, MAX_TX_SIZE, self._off(at))
        if total is None or len(buf) < at + total:
            return None
        return bytes(buf[at : at + total]), at + total


class VoteReader(_Reader[bytes]):
    """VOTE: ``u32 len | record`` back to back."""

    def _parse(self, buf: bytearray, at: int) -> tuple[bytes, int] | None:
        n = _length(buf, at, _U32)
        if n is None:
            return None
        if not 1 <= n <= MAX_VOTE_LEN:
            raise _bad("vote length out of range", WireCode.BAD_LENGTH, self._off(at))
        if len(buf) < at + 4 + n:
            return None
        return bytes(buf[at + 4 : at + 4 + n]), at + 4 + n
