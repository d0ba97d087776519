"""The state backup stream: ZapDB entries streamed straight from a read snapshot.

Format: ``docs/formats/state-backup.md``.  In short (all integers unsigned
little-endian)::

    header  = "ZSB1" | u64 version | 32-byte state root
    batch   = u32 count (1..MAX_BATCH) | count x u16 key_len | count x u32 value_len
              | keys back to back | values back to back
    trailer = u32 0 | u64 total entries

The layout is columnar so a writer never touches an entry in Python: lengths
are ``array`` dumps of ``map(len, ...)`` and keys/values are one ``join``
each -- the bytes go out exactly as the snapshot returned them.  Entries come
in the snapshot's key order; a restore re-derives the state root and must
match the header's (:func:`restore`).

:class:`BackupReader` is sans-IO: feed any split of the stream with
``receive_data`` (returns completed entries), then ``end_of_stream``.  Any
malformed input raises :class:`~zapstack.errors.RemoteProtocolError`
(``BAD_FIELD``; ``BAD_STATE_ROOT`` for a restore whose root differs) with the
stream offset that proved it.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable
from operator import itemgetter
from typing import BinaryIO

from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.zapdb import ReadView, ZapDB
from zapstack.zapdb.txn import MAX_KEY_LEN

__all__ = ["MAGIC", "MAX_BATCH", "MAX_VALUE_LEN", "BackupReader", "restore", "write_stream"]

MAGIC = b"ZSB1"
"""First four bytes of a state backup stream."""
MAX_BATCH = 65_536
"""Most entries in one batch."""
MAX_VALUE_LEN = 1 << 24
"""Largest value a reader accepts (16 MiB)."""
WRITE_BATCH = 8192
"""Entries per batch the writer emits."""

_HEAD = struct.Struct("<4sQ32s")
_U32 = struct.Struct("<I")
_TRAILER = struct.Struct("<IQ")
_SWAP = sys.byteorder == "big"
_KEYS, _VALUES = itemgetter(0), itemgetter(1)


def _le(typecode: str, values: Iterable[int]) -> bytes:
    arr = array(typecode, values)
    if _SWAP:  # pragma: no cover - little-endian hosts only here
        arr.byteswap()
    return arr.tobytes()


def write_stream(view: ReadView, out: BinaryIO, *, batch: int = WRITE_BATCH) -> tuple[int, int]:
    """Write ``view``'s whole state to ``out``; return (entries, key+value bytes)."""
    out.write(_HEAD.pack(MAGIC, view.version, view.root()))
    items = list(view.iterate())
    payload = 0
    for lo in range(0, len(items), batch):
        part = items[lo : lo + batch]
        keys = list(map(_KEYS, part))
        values = list(map(_VALUES, part))
        klens, vlens = _le("H", map(len, keys)), _le("I", map(len, values))
        body = (b"".join(keys), b"".join(values))
        payload += len(body[0]) + len(body[1])
        out.writelines((_U32.pack(len(part)), klens, vlens, *body))
    out.write(_TRAILER.pack(0, len(items)))
    return len(items), payload


class BackupReader:
    """Incremental parser of a state backup stream (see module doc)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._at = 0
        self.version: int | None = None
        """Store version named in the header (None until it arrived)."""
        self.root: bytes | None = None
        """State root named in the header (None until it arrived)."""
        self.count = 0
        """Entries parsed so far."""
        self.done = False
        """True once the trailer arrived."""

    def _bad(self, msg: str, pos: int, code: WireCode = WireCode.BAD_FIELD) -> RemoteProtocolError:
        return RemoteProtocolError(f"state backup: {msg}", code=code, offset=self._at + pos)

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[tuple[bytes, bytes]]:
        """Feed bytes (any split); return the entries they completed."""
        if self.done:
            if data:
                raise self._bad("bytes after the trailer", len(self._buf))
            return []
        self._buf += data
        buf, pos = self._buf, 0
        out: list[tuple[bytes, bytes]] = []
        if self.root is None:
            if len(buf) < _HEAD.size:
                return out
            pos = self._header(buf)
        while len(buf) - pos >= 4:
            if _U32.unpack_from(buf, pos)[0] == 0:
                pos = self._trailer(buf, pos)
                break
            end = self._batch(buf, pos, out)
            if end is None:
                break
            pos = end
        del buf[:pos]
        self._at += pos
        return out

    def _header(self, buf: bytearray) -> int:
        """Take the header at the start of ``buf``; return where batches begin."""
        magic, self.version, self.root = _HEAD.unpack_from(buf, 0)
        if magic != MAGIC:
            raise self._bad(f"bad magic {bytes(magic)!r}", 0)
        return _HEAD.size

    def _trailer(self, buf: bytearray, pos: int) -> int:
        """Take the trailer at ``pos`` if it is all here; return the position after it."""
        if len(buf) - pos < _TRAILER.size:
            return pos
        total = _TRAILER.unpack_from(buf, pos)[1]
        if total != self.count:
            raise self._bad(f"trailer says {total} entries, stream had {self.count}", pos)
        pos += _TRAILER.size
        self.done = True
        if pos != len(buf):
            raise self._bad("bytes after the trailer", pos)
        return pos

    def _batch(self, buf: bytearray, pos: int, out: list[tuple[bytes, bytes]]) -> int | None:
        """Take the batch at ``pos`` into ``out`` if it is all here; return its end."""
        count: int = _U32.unpack_from(buf, pos)[0]
        if count > MAX_BATCH:
            raise self._bad(f"batch of {count} > {MAX_BATCH}", pos)
        lens_end = pos + 4 + 6 * count
        if len(buf) < lens_end:
            return None
        klens, vlens = self._lengths(buf, pos, count)
        end = lens_end + sum(klens) + sum(vlens)
        if len(buf) < end:
            return None
        kat, vat = lens_end, lens_end + sum(klens)
        for k, v in zip(klens, vlens, strict=True):
            out.append((bytes(buf[kat : kat + k]), bytes(buf[vat : vat + v])))
            kat += k
            vat += v
        self.count += count
        return end

    def _lengths(self, buf: bytearray, pos: int, count: int) -> tuple[array[int], array[int]]:
        """The batch at ``pos``'s key and value lengths, each checked against its bound."""
        lens_end = pos + 4 + 6 * count
        klens = array("H", buf[pos + 4 : pos + 4 + 2 * count])
        vlens = array("I", buf[pos + 4 + 2 * count : lens_end])
        if _SWAP:  # pragma: no cover
            klens.byteswap()
            vlens.byteswap()
        for i, k in enumerate(klens):
            if not 0 < k <= MAX_KEY_LEN:
                raise self._bad(f"key length {k} outside 1..{MAX_KEY_LEN}", pos + 4 + 2 * i)
        for i, v in enumerate(vlens):
            if v > MAX_VALUE_LEN:
                raise self._bad(f"value length {v} > {MAX_VALUE_LEN}", pos + 4 + 2 * count + 4 * i)
        return klens, vlens

    def end_of_stream(self) -> None:
        """The stream ended: raise unless the trailer arrived."""
        if not self.done:
            raise self._bad("truncated stream", len(self._buf))


def restore(pieces: Iterable[bytes], db: ZapDB) -> bytes:
    """Write a stream's entries into empty ``db``; return the root (checked against the header)."""
    reader = BackupReader()
    txn = db.begin()
    try:
        for data in pieces:
            for key, value in reader.receive_data(data):
                txn.set(key, value)
        reader.end_of_stream()
        if txn.root() != reader.root:
            raise RemoteProtocolError(
                "state backup: restored root differs from the header's",
                code=WireCode.BAD_STATE_ROOT,
            )
        return txn.commit()
    finally:
        txn.discard()
