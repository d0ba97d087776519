"""Incremental readers of the bootstrap replies and pushes (``docs/formats/bootstrap.md``).

One reader per stream: feed bytes with ``receive_data`` in any split, take
complete records with ``next_record`` (None until more bytes arrive), call
``end_of_stream`` at FIN (``finish`` for a BLOCK_PUSH).  A reader checks each
length before buffering what it announces, so an oversize record is refused
early.  Any malformed input raises :class:`~zapstack.errors.RemoteProtocolError`
with the wire code to reset the stream with and the byte offset (from the
first byte after the type byte) that proved it.  Every reader is fed whole and
byte-at-a-time by the tests; the requests and the record encoders are in
:mod:`zapstack.bootstrap.wire`.  Readers are single-threaded and hold only the
bytes of records not yet returned.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Generic, TypeVar

from zapstack.bootstrap.wire import MAX_CERT_LEN, MAX_CHUNK_RECORD, MAX_VOTE_LEN, _bad
from zapstack.errors import WireCode
from zapstack.zap.schema import MAGIC, MAX_BLOCK_SIZE, MAX_TX_SIZE

try:
    from zapstack.zapdb import _smtfast
except ImportError:  # pragma: no cover - the extension is optional
    _smtfast = None  # type: ignore[assignment]
from zapstack.zapdb.proofs import StateChunk
from zapstack.zapdb.txn import MAX_KEY_LEN

__all__ = [
    "BlockPushReader",
    "ChunkReplyReader",
    "RangeRecord",
    "RangeReplyReader",
    "TxGossipReader",
    "VoteReader",
]

_U16, _U32, _U64 = (struct.Struct(f) for f in ("<H", "<I", "<Q"))
_ZAP_TOTAL = struct.Struct("<I")  # ZAP frame total_length at bytes 8..11

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
            return self._body(mv, self._off(at + 4)), end
        finally:
            mv.release()

    def _body(self, body: memoryview, base: int) -> StateChunk:
        """One record's body: the C parser when it is built, else :meth:`_body_py`."""
        if _smtfast is None:
            return self._body_py(bytes(body), base)
        index = _U32.unpack_from(body, 0)[0]
        if index != self.start + self.records:
            raise _bad("chunk index out of order", WireCode.BAD_FIELD, base)
        try:
            entries, siblings, terminal = _smtfast.parse_chunk(body, self.depth, MAX_KEY_LEN)
        except ValueError as exc:
            msg, code, pos = exc.args
            raise _bad(msg, WireCode[code], base + pos) from None
        return StateChunk(self.depth, index, entries, siblings, terminal)

    def _body_py(self, body: bytes, base: int) -> StateChunk:
        """:meth:`_body` in pure Python (the reference; tests hold the two equal)."""

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
