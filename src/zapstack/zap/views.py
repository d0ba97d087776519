"""Verified, zero-copy views over immutable ZAP frame buffers.

Contract
--------
* A view wraps a read-only ``memoryview`` of one frame and the frame's field
  end offsets (decoded once, ints only).  Every accessor is a precompiled
  ``struct.Struct.unpack_from`` or a ``memoryview`` slice of that one buffer:
  no payload is ever copied to be read.
* Views are handed out only by ingress (``zapstack.zap.ingress``) after the
  frame passed stages 1-4, or by a :class:`BlockView` for tx frames that the
  block's own ingress already validated.  There is no public constructor from
  raw bytes: *verify before viewing*.
* Views are immutable and safe to share between threads and speculative
  branches (N branches hold N references to one buffer).
"""

from __future__ import annotations

import hashlib
import struct

from zapstack.zap.schema import Schema
from zapstack.zap.transcript import BLOCK_DOMAIN, TX_DOMAIN, block_id, transcript_digest

__all__ = ["BlockView", "FrameView", "TxView"]

_HEADER = struct.Struct("<4sBBBBIIHHB")
"""magic, kind, version, flags, scheme, total_length, chain_id, field_count, sig_length, reserved"""
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
HEADER_SIZE = 21


class FrameView:
    """Typed, read-only access to one validated frame."""

    __slots__ = ("_digest", "_ends", "_mv", "schema")

    _domain = TX_DOMAIN

    def __init__(self, mv: memoryview, schema: Schema, ends: tuple[int, ...]) -> None:
        self._mv = mv
        self.schema = schema
        self._ends = ends
        self._digest: bytes | None = None

    # -- header -----------------------------------------------------------------
    @property
    def buffer(self) -> memoryview:
        """The whole frame (read-only view of the one received buffer)."""
        return self._mv

    @property
    def kind(self) -> int:
        return self._mv[4]

    @property
    def version(self) -> int:
        return self._mv[5]

    @property
    def flags(self) -> int:
        return self._mv[6]

    @property
    def scheme(self) -> int:
        return self._mv[7]

    @property
    def total_length(self) -> int:
        return int(_U32.unpack_from(self._mv, 8)[0])

    @property
    def chain_id(self) -> int:
        return int(_U32.unpack_from(self._mv, 12)[0])

    @property
    def sig_length(self) -> int:
        return self._mv[18] | (self._mv[19] << 8)

    # -- body -------------------------------------------------------------------
    def span(self, name: str) -> tuple[int, int]:
        """(start, end) byte offsets of field ``name`` within the frame."""
        i = self.schema.index[name]
        start = self._ends[i - 1] if i else self.schema.table_end
        return start, self._ends[i]

    def field(self, name: str) -> memoryview:
        """Field ``name`` as a zero-copy slice."""
        start, end = self.span(name)
        return self._mv[start:end]

    def u64(self, name: str) -> int:
        return int(_U64.unpack_from(self._mv, self.span(name)[0])[0])

    def u32(self, name: str) -> int:
        return int(_U32.unpack_from(self._mv, self.span(name)[0])[0])

    @property
    def signed_region(self) -> memoryview:
        """Bytes ``[0, total - sig_length)``: what the transcript hashes."""
        return self._mv[: self._ends[-1]]

    @property
    def signature(self) -> memoryview:
        return self._mv[self._ends[-1] :]

    @property
    def pubkey(self) -> memoryview:
        """The signer's public key (tx sender / block proposer)."""
        return self.field("pubkey")

    @property
    def digest(self) -> bytes:
        """The transcript digest (what the signature signs)."""
        if self._digest is None:
            self._digest = transcript_digest(self._domain, self._mv, self._ends[-1])
        return self._digest

    def __len__(self) -> int:
        return len(self._mv)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kind=0x{self.kind:02x} len={len(self._mv)}>"


class TxView(FrameView):
    """A validated tx frame (transfer or call)."""

    __slots__ = ("_sender",)  # unset until the first ``sender`` (no __init__ of its own)

    @property
    def tx_id(self) -> bytes:
        """The tx id: its transcript digest (signature excluded, so non-malleable)."""
        return self.digest

    @property
    def sender(self) -> bytes:
        """The sender's account id: sha256(pubkey) (hashed once per view)."""
        try:
            return self._sender
        except AttributeError:
            self._sender: bytes = hashlib.sha256(self.field("pubkey")).digest()
            return self._sender

    @property
    def fee(self) -> int:
        return self.u64("fee")

    @property
    def nonce(self) -> int:
        return self.u64("nonce")

    @property
    def amount(self) -> int:
        """Amount moved (0 for kinds without an ``amount`` field)."""
        return self.u64("amount") if "amount" in self.schema.index else 0

    @property
    def recipient(self) -> bytes:
        """Recipient (transfer) or target (call) account id, 32 bytes."""
        name = "recipient" if "recipient" in self.schema.index else "target"
        return bytes(self.field(name))

    @property
    def data(self) -> memoryview:
        """Call data (empty for kinds without a ``data`` field)."""
        return self.field("data") if "data" in self.schema.index else self._mv[0:0]


class BlockView(FrameView):
    """A validated block frame whose payload holds validated tx frames."""

    __slots__ = ("_spans", "_txs")

    _domain = BLOCK_DOMAIN

    def __init__(
        self,
        mv: memoryview,
        schema: Schema,
        ends: tuple[int, ...],
        spans: tuple[tuple[int, int, Schema, tuple[int, ...], bytes], ...],
    ) -> None:
        """``spans``: per tx (start, end, schema, field ends relative to start,
        transcript digest: computed for the tx root while validating, kept so
        that no tx id is hashed twice)."""
        super().__init__(mv, schema, ends)
        self._spans = spans
        self._txs: tuple[TxView, ...] | None = None

    @property
    def block_id(self) -> bytes:
        """sha256(block bytes)."""
        return block_id(self._mv)

    @property
    def height(self) -> int:
        return self.u64("height")

    @property
    def parent(self) -> bytes:
        return bytes(self.field("parent"))

    @property
    def timestamp_ms(self) -> int:
        return self.u64("timestamp_ms")

    @property
    def state_root(self) -> bytes:
        return bytes(self.field("state_root"))

    @property
    def tx_root(self) -> bytes:
        return bytes(self.field("tx_root"))

    @property
    def chunk_root(self) -> bytes:
        return bytes(self.field("chunk_root"))

    @property
    def tx_count(self) -> int:
        return self.u32("tx_count")

    @property
    def payload(self) -> memoryview:
        """The concatenated tx frames (what the 64 KiB chunks cover)."""
        return self.field("payload")

    @property
    def payload_offset(self) -> int:
        """Offset of the payload within the block: the header prefix length."""
        return self.span("payload")[0]

    def tx_spans(self) -> list[tuple[int, int]]:
        """(start, end) of each tx frame within the block buffer, in block order."""
        return [(s, e) for s, e, _, _, _ in self._spans]

    def tx(self, i: int) -> TxView:
        """The i-th tx as a zero-copy view."""
        if self._txs is not None:
            return self._txs[i]
        start, end, schema, ends, digest = self._spans[i]
        view = TxView(self._mv[start:end], schema, ends)
        view._digest = digest
        return view

    def txs(self) -> list[TxView]:
        """Every tx, in block order, as zero-copy views (made once per block view:
        views are immutable, so every caller may share them)."""
        if self._txs is None:
            self._txs = tuple(self.tx(i) for i in range(len(self._spans)))
        return list(self._txs)
