"""Streaming ZAP frame ingress: tx receive pipeline stages 1-4, sans-IO.

Theory of operation
-------------------
One :class:`IngressMachine` per stream.  Feed it bytes with
:meth:`IngressMachine.receive_data` as they arrive (any fragmentation), call
:meth:`IngressMachine.end_of_stream` on FIN, and drain
:meth:`IngressMachine.next_event`, which returns :class:`FrameAccepted`,
:class:`FrameRejected`, ``NEED_DATA`` (more bytes needed) or ``END`` (the
machine is finished; nothing more will come).

Every check is pinned to the byte that triggers it (a min-heap of
``(position, check)``); a check runs as soon as byte ``position`` has arrived:

==========  =========================  ================================
stage       trigger (0-based byte)      rejects with
==========  =========================  ================================
1 MAGIC     each of bytes 0..3          BAD_MAGIC at the first wrong byte
2 SCHEMA    byte 4                      UNKNOWN_KIND (not in the table)
3 HEADER    5 version, 6 flags,         BAD_VERSION, BAD_FLAGS, BAD_SCHEME,
            7 scheme, 11 length,        BAD_LENGTH, BAD_CHAIN,
            15 chain, 17 field count,   BAD_FIELD_COUNT, BAD_SIG_LENGTH,
            19 sig length, 20 reserved  BAD_RESERVED
4 BODY      last byte of each offset    OFFSET_OVERRUN
            entry; payload end (blocks) BAD_FIELD
            last byte of the frame      BAD_SIGNATURE
==========  =========================  ================================

So the verdict (stage, code, offset) depends only on the bytes, never on how
they were split: fed whole or one byte at a time, the event sequence is equal.
A frame completes at exactly ``total_length`` bytes (:class:`FrameAccepted`);
any byte after that yields ``FrameRejected(TRAILING_DATA)``; FIN before
completion yields ``FrameRejected(TRUNCATED)``.  After a rejection the machine
ignores further input (the stream is being reset).

Zero copy: if the frame arrives as one immutable chunk (``bytes`` or a
read-only ``memoryview``), the accepted view slices that object; otherwise the
fragments are accumulated once into a buffer that is then frozen (a read-only
view; the machine never writes to it again).  A frame that arrives whole in
one such chunk first goes through :func:`~zapstack.zap.fastpath.check_whole`
(straight-line header and offsets-table checks that only ever accept); the
events it leads to are equal to the check-by-byte path's.  The events are
defined in :mod:`zapstack.zap.events`.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable, Mapping

from zapstack.errors import Stage, WireCode
from zapstack.zap import merkle
from zapstack.zap.events import END, NEED_DATA, Event, FrameAccepted, FrameRejected
from zapstack.zap.fastpath import check_whole
from zapstack.zap.schema import (
    FLAG_SIGNED,
    HEADER_SIZE,
    MAGIC,
    MAX_TXS_PER_BLOCK,
    TX_SCHEMAS,
    VERSION,
    FieldType,
    FrameKind,
    Schema,
)
from zapstack.zap.sigschemes import SIG_SIZE, SigScheme, verify_signature
from zapstack.zap.transcript import transcript_digest
from zapstack.zap.views import BlockView, FrameView, TxView

__all__ = ["IngressMachine"]

_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")


class _Reject(Exception):
    def __init__(self, stage: Stage, code: WireCode, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.verdict = FrameRejected(stage, code, offset, reason)


_Check = Callable[[memoryview, int], None]


class IngressMachine:
    """Validates one frame as its bytes stream in.  See the module docstring."""

    def __init__(
        self,
        schemas: Mapping[int, Schema] = TX_SCHEMAS,
        *,
        chain_id: int | None = None,
        verify_signatures: bool = True,
    ) -> None:
        self._schemas = schemas
        self._chain_id = chain_id
        self._verify = verify_signatures
        self._data: bytes | bytearray | memoryview = b""
        self._owned = False
        self._n = 0
        self._seq = 0
        self._heap: list[tuple[int, int, Stage, _Check]] = []
        self._events: list[Event] = []
        self._state = "active"  # -> "done" | "failed"
        self._schema: Schema | None = None
        self._scheme = SigScheme.NONE
        self._total = 0
        self._ends: list[int] = []
        self._spans: tuple[tuple[int, int, Schema, tuple[int, ...], bytes], ...] = ()

    # -- public API -------------------------------------------------------------
    @property
    def bytes_received(self) -> int:
        return self._n

    @property
    def finished(self) -> bool:
        """True once the frame was accepted or rejected."""
        return self._state != "active"

    @property
    def stage(self) -> Stage:
        """The stage of the next pending check (``Stage.NONE`` once finished)."""
        if self._state != "active":
            return Stage.NONE
        if not self._heap:  # nothing scheduled yet: the first byte is a magic byte
            return Stage.MAGIC
        return self._heap[0][2]

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the next bytes of the stream."""
        if not data or self._state == "failed":
            return
        if self._state == "done":
            self._fail(Stage.BODY, WireCode.TRAILING_DATA, self._total, "bytes after the frame")
            return
        if self._n == 0 and (
            isinstance(data, bytes) or (isinstance(data, memoryview) and data.readonly)
        ):
            self._data = data
            if self._fast_whole():
                return
        else:
            if not self._owned:
                self._data = bytearray(self._data)
                self._owned = True
            assert isinstance(self._data, bytearray)
            self._data += data
        self._n += len(data)
        self._start()
        self._advance()

    def end_of_stream(self) -> None:
        """The peer finished the stream (FIN)."""
        if self._state == "active":
            self._start()
            self._fail(self.stage, WireCode.TRUNCATED, self._n, "stream ended mid-frame")

    def next_event(self) -> Event:
        """The next event, ``NEED_DATA`` while incomplete, ``END`` when finished."""
        if self._events:
            return self._events.pop(0)
        return NEED_DATA if self._state == "active" else END

    # -- fast path --------------------------------------------------------------
    def _fast_whole(self) -> bool:
        """Accept a frame that arrived whole in one immutable chunk (:mod:`.fastpath`).

        It only ever *accepts*: on any anomaly it returns False and the readable
        check-by-byte machinery below re-derives the exact verdict, so both paths
        give identical events (tested).  Payload and signature checks are shared.
        """
        assert not isinstance(self._data, bytearray)
        whole = check_whole(self._data, self._schemas, self._chain_id)
        if whole is None:
            return False
        self._schema, self._scheme, ends = whole
        self._total = self._n = len(self._data)
        self._ends = list(ends)
        self._heap.clear()
        with memoryview(self._data) as mv:
            try:
                if self._schema.kind is FrameKind.BLOCK:
                    self._check_payload(mv, ends[-1] - 1)
                self._complete(mv, self._total - 1)
            except _Reject as rej:
                self._events.append(rej.verdict)
                self._state = "failed"
        return True

    # -- machinery --------------------------------------------------------------
    def _start(self) -> None:
        """Schedule the first checks (deferred so the fast path pays nothing)."""
        if self._seq == 0:
            for i in range(4):
                self._push(i, Stage.MAGIC, self._check_magic)
            self._push(4, Stage.SCHEMA, self._check_kind)

    def _push(self, pos: int, stage: Stage, check: _Check) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (pos, self._seq, stage, check))

    def _fail(self, stage: Stage, code: WireCode, offset: int, reason: str) -> None:
        self._events.append(FrameRejected(stage, code, offset, reason))
        self._state = "failed"
        self._heap.clear()

    def _advance(self) -> None:
        mv = memoryview(self._data)
        try:
            while self._heap and self._heap[0][0] < self._n and self._state == "active":
                pos, _, _, check = heapq.heappop(self._heap)
                check(mv, pos)
        except _Reject as rej:
            self._events.append(rej.verdict)
            self._state = "failed"
            self._heap.clear()
        finally:
            mv.release()
        if self._state == "done" and self._n > self._total:
            self._fail(Stage.BODY, WireCode.TRAILING_DATA, self._total, "bytes after the frame")

    # -- stage 1 & 2 ------------------------------------------------------------
    def _check_magic(self, mv: memoryview, pos: int) -> None:
        if mv[pos] != MAGIC[pos]:
            raise _Reject(Stage.MAGIC, WireCode.BAD_MAGIC, pos, "not a ZAP frame (magic)")

    def _check_kind(self, mv: memoryview, pos: int) -> None:
        schema = self._schemas.get(mv[4])
        if schema is None:
            raise _Reject(Stage.SCHEMA, WireCode.UNKNOWN_KIND, 4, f"unknown kind 0x{mv[4]:02x}")
        self._schema = schema
        for at, check in (
            (5, self._check_version),
            (6, self._check_flags),
            (7, self._check_scheme),
            (11, self._check_length),
            (15, self._check_chain),
            (17, self._check_field_count),
            (19, self._check_sig_length),
            (20, self._check_reserved),
        ):
            self._push(at, Stage.HEADER, check)

    # -- stage 3 ----------------------------------------------------------------
    @staticmethod
    def _header(code: WireCode, pos: int, reason: str) -> _Reject:
        return _Reject(Stage.HEADER, code, pos, reason)

    def _check_version(self, mv: memoryview, pos: int) -> None:
        if mv[5] != VERSION:
            raise self._header(WireCode.BAD_VERSION, pos, f"version {mv[5]} (want {VERSION})")

    def _check_flags(self, mv: memoryview, pos: int) -> None:
        if mv[6] & ~FLAG_SIGNED:
            raise self._header(WireCode.BAD_FLAGS, pos, f"unknown flag bits 0x{mv[6]:02x}")
        if not mv[6] & FLAG_SIGNED:
            raise self._header(WireCode.BAD_FLAGS, pos, "signature-present bit clear")

    def _check_scheme(self, mv: memoryview, pos: int) -> None:
        assert self._schema is not None
        if mv[7] not in self._schema.schemes:
            raise self._header(WireCode.BAD_SCHEME, pos, f"signature scheme {mv[7]} not allowed")
        self._scheme = SigScheme(mv[7])

    def _check_length(self, mv: memoryview, pos: int) -> None:
        assert self._schema is not None
        total = int(_U32.unpack_from(mv, 8)[0])
        low, high = self._schema.min_size(self._scheme), self._schema.max_size
        if not low <= total <= high:
            raise self._header(
                WireCode.BAD_LENGTH, pos, f"total length {total} not in {low}..{high}"
            )
        self._total = total

    def _check_chain(self, mv: memoryview, pos: int) -> None:
        chain = int(_U32.unpack_from(mv, 12)[0])
        if self._chain_id is not None and chain != self._chain_id:
            raise self._header(WireCode.BAD_CHAIN, pos, f"chain id {chain} (want {self._chain_id})")

    def _check_field_count(self, mv: memoryview, pos: int) -> None:
        assert self._schema is not None
        count = int(_U16.unpack_from(mv, 16)[0])
        if count != len(self._schema.fields):
            want = len(self._schema.fields)
            raise self._header(WireCode.BAD_FIELD_COUNT, pos, f"{count} fields (want {want})")

    def _check_sig_length(self, mv: memoryview, pos: int) -> None:
        sig_len = int(_U16.unpack_from(mv, 18)[0])
        if sig_len != SIG_SIZE[self._scheme]:
            want = SIG_SIZE[self._scheme]
            raise self._header(WireCode.BAD_SIG_LENGTH, pos, f"sig length {sig_len} (want {want})")

    def _check_reserved(self, mv: memoryview, pos: int) -> None:
        assert self._schema is not None
        if mv[20] != 0:
            raise self._header(WireCode.BAD_RESERVED, pos, "reserved byte 20 is not zero")
        for i in range(len(self._schema.fields)):
            self._push(HEADER_SIZE + 4 * i + 3, Stage.BODY, self._check_offset)
        self._push(self._total - 1, Stage.BODY, self._complete)

    # -- stage 4 ----------------------------------------------------------------
    def _check_offset(self, mv: memoryview, pos: int) -> None:
        assert self._schema is not None
        i = (pos - HEADER_SIZE) // 4
        spec = self._schema.fields[i]
        end = int(_U32.unpack_from(mv, pos - 3)[0])
        start = self._ends[-1] if self._ends else self._schema.table_end
        low, high = spec.size_bounds(self._scheme)
        body_end = self._total - SIG_SIZE[self._scheme]
        last = i == len(self._schema.fields) - 1
        if end < start + low or end > start + high or end > body_end or (last and end != body_end):
            allowed = f"{start + low}..{min(start + high, body_end)}"
            reason = f"field {spec.name!r} ends at {end}: outside {allowed}"
            raise _Reject(Stage.BODY, WireCode.OFFSET_OVERRUN, pos, reason)
        self._ends.append(end)
        if spec.type is FieldType.PAYLOAD:
            # at the payload's last byte; for an empty payload, at the last byte of
            # the field before it (always after this offsets-table entry)
            self._push(end - 1, Stage.BODY, self._check_payload)

    def _check_payload(self, mv: memoryview, pos: int) -> None:
        """Blocks: the payload is exactly ``tx_count`` valid tx frames; roots match."""
        assert self._schema is not None
        idx = self._schema.index
        start = self._ends[idx["payload"] - 1]
        end = self._ends[idx["payload"]]
        chain = int(_U32.unpack_from(mv, 12)[0])
        spans: list[tuple[int, int, Schema, tuple[int, ...], bytes]] = []
        leaves: list[bytes] = []
        p = start
        ro = mv.toreadonly()
        while p < end:
            if len(spans) >= MAX_TXS_PER_BLOCK:
                raise _Reject(Stage.BODY, WireCode.BAD_FIELD, p, "more txs than a block may hold")
            # the frame is read as a tx stream of the rest of the payload (zap.md §6):
            # it needs at most its declared total_length, and 12 bytes to reach that
            size = end - p
            if size >= 12:
                size = min(size, max(12, int(_U32.unpack_from(mv, p + 8)[0])))
            inner = IngressMachine(TX_SCHEMAS, chain_id=chain, verify_signatures=False)
            inner.receive_data(ro[p : p + size])
            inner.end_of_stream()
            ev = inner.next_event()
            if not isinstance(ev, FrameAccepted):
                assert isinstance(ev, FrameRejected)
                raise _Reject(
                    Stage.BODY, WireCode.BAD_FIELD, p + ev.offset, f"tx {len(spans)}: {ev.reason}"
                )
            tx = ev.view
            spans.append((p, p + size, tx.schema, tx._ends, tx.digest))
            leaves.append(merkle.leaf_hash(tx.digest))
            p += size
        ro.release()
        hdr_start = self._ends[idx["tx_count"] - 1]
        count = int(_U32.unpack_from(mv, hdr_start)[0])
        if count != len(spans):
            raise _Reject(
                Stage.BODY, WireCode.BAD_FIELD, pos, f"tx_count {count} but {len(spans)} txs"
            )
        for name, want in (
            ("tx_root", merkle.root_of_leaf_hashes(leaves)),
            ("chunk_root", merkle.chunk_root(mv[start:end])),
        ):
            s = self._ends[idx[name] - 1]
            if mv[s : s + 32] != want:
                raise _Reject(Stage.BODY, WireCode.BAD_FIELD, pos, f"{name} does not match payload")
        self._spans = tuple(spans)

    def _complete(self, mv: memoryview, pos: int) -> None:
        assert self._schema is not None
        # bytes / read-only input: a slice of the caller's object (zero copy);
        # accumulated fragments: a read-only view that freezes our buffer for good.
        frame = memoryview(self._data)[: self._total].toreadonly()
        ends = tuple(self._ends)
        view: FrameView
        if self._schema.kind is FrameKind.BLOCK:
            view = BlockView(frame, self._schema, ends, self._spans)
        else:
            view = TxView(frame, self._schema, ends)
        if self._verify:
            digest = transcript_digest(view._domain, frame, ends[-1])
            if not verify_signature(self._scheme, view.pubkey, digest, view.signature):
                raise _Reject(Stage.BODY, WireCode.BAD_SIGNATURE, pos, "signature does not verify")
            view._digest = digest
        self._events.append(FrameAccepted(view))
        self._state = "done"
