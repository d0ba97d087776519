"""Build ZAP frames, and parse whole buffers into verified views.

Builders produce the exact bytes of ``docs/formats/zap.md``; parsers run the
same :class:`~zapstack.zap.ingress.IngressMachine` the network uses, fed the
whole buffer at once, so there is one validator for every path.

:func:`parse_block` remembers its last few accepted blocks (:class:`_BlockMemo`):
a node parses every block at vote, commit, the tx index and the bootstrap
server, and a block of 2,000 txs costs milliseconds of Python each time.  A
remembered view is returned only for the same immutable ``bytes`` content and
only when it passed at least the checks asked for (the chain id asked, or none;
the signature, if asked); a rejection is never remembered, so bad bytes are
re-checked and re-raised every time.  Views are immutable (their lazily cached
digests are pure), so one view may serve several threads.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from zapstack.errors import LocalProtocolError
from zapstack.zap import merkle
from zapstack.zap.events import FrameAccepted, FrameRejected
from zapstack.zap.ingress import IngressMachine
from zapstack.zap.schema import (
    BLOCK_SCHEMAS,
    MAGIC,
    TX_SCHEMAS,
    VERSION,
    FieldType,
    FrameKind,
    Schema,
)
from zapstack.zap.sigschemes import SIG_SIZE, Signer
from zapstack.zap.transcript import BLOCK_DOMAIN, TX_DOMAIN, transcript_digest
from zapstack.zap.views import BlockView, FrameView, TxView

__all__ = [
    "DEFAULT_CHAIN_ID",
    "build_block",
    "build_call",
    "build_frame",
    "build_transfer",
    "parse_block",
    "parse_frame",
    "parse_tx",
]

DEFAULT_CHAIN_ID = 0x4C5558  # "LUX"

_HEADER = struct.Struct("<4sBBBBIIHHB")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

Buf = bytes | bytearray | memoryview
FieldValue = int | Buf


def _encode_field(schema: Schema, name: str, ftype: FieldType, value: FieldValue) -> Buf:
    if ftype is FieldType.U64:
        if not isinstance(value, int) or not 0 <= value < 2**64:
            raise LocalProtocolError(f"{name}: u64 expected, got {value!r}")
        return _U64.pack(value)
    if ftype is FieldType.U32:
        if not isinstance(value, int) or not 0 <= value < 2**32:
            raise LocalProtocolError(f"{name}: u32 expected, got {value!r}")
        return _U32.pack(value)
    if isinstance(value, int):
        raise LocalProtocolError(f"{name}: bytes expected, got an int")
    if ftype is FieldType.B32 and len(value) != 32:
        raise LocalProtocolError(f"{name}: exactly 32 bytes expected, got {len(value)}")
    return value


def build_frame(
    schema: Schema, values: Mapping[str, FieldValue], signer: Signer, chain_id: int
) -> bytes:
    """Encode and sign one frame of ``schema``; ``pubkey`` comes from ``signer``."""
    parts: list[Buf] = []
    for spec in schema.fields:
        if spec.type is FieldType.PUBKEY:
            parts.append(signer.public_key)
            continue
        if spec.name not in values:
            raise LocalProtocolError(f"missing field {spec.name!r}")
        encoded = _encode_field(schema, spec.name, spec.type, values[spec.name])
        if spec.type in (FieldType.BYTES, FieldType.PAYLOAD) and len(encoded) > spec.max_size:
            raise LocalProtocolError(f"{spec.name}: {len(encoded)} bytes > {spec.max_size}")
        parts.append(encoded)
    sig_len = SIG_SIZE[signer.scheme]
    ends: list[int] = []
    pos = schema.table_end
    for part in parts:
        pos += len(part)
        ends.append(pos)
    total = pos + sig_len
    if total > schema.max_size:
        raise LocalProtocolError(f"frame of {total} bytes exceeds {schema.max_size}")
    header = _HEADER.pack(
        MAGIC, schema.kind, VERSION, 0x01, signer.scheme, total, chain_id, len(parts), sig_len, 0
    )
    table = b"".join(_U32.pack(e) for e in ends)
    signed = b"".join([header, table, *parts])
    domain = BLOCK_DOMAIN if schema.kind is FrameKind.BLOCK else TX_DOMAIN
    signature = signer.sign(transcript_digest(domain, signed, len(signed)))
    assert len(signature) == sig_len
    return signed + signature


def build_transfer(
    signer: Signer,
    recipient: bytes,
    amount: int,
    fee: int,
    nonce: int,
    chain_id: int = DEFAULT_CHAIN_ID,
) -> bytes:
    """A signed transfer tx frame."""
    values: dict[str, FieldValue] = {
        "recipient": recipient,
        "amount": amount,
        "fee": fee,
        "nonce": nonce,
    }
    return build_frame(TX_SCHEMAS[FrameKind.TRANSFER], values, signer, chain_id)


def build_call(
    signer: Signer,
    target: bytes,
    data: Buf,
    fee: int,
    nonce: int,
    chain_id: int = DEFAULT_CHAIN_ID,
) -> bytes:
    """A signed call tx frame carrying ``data`` (up to 16 KiB)."""
    values: dict[str, FieldValue] = {"target": target, "data": data, "fee": fee, "nonce": nonce}
    return build_frame(TX_SCHEMAS[FrameKind.CALL], values, signer, chain_id)


def build_block(
    signer: Signer,
    *,
    height: int,
    parent: bytes,
    timestamp_ms: int,
    state_root: bytes,
    txs: Sequence[TxView | Buf],
    chain_id: int = DEFAULT_CHAIN_ID,
) -> bytes:
    """A signed block frame whose payload is ``txs`` (tx frames) back to back.

    Tx frames are referenced by their buffers: the only copy is the single
    join that lays out the new block buffer.
    """
    bufs = [t.buffer if isinstance(t, FrameView) else t for t in txs]
    payload = b"".join(bufs)
    leaves = []
    for t in txs:
        view = t if isinstance(t, TxView) else parse_tx(t, verify_signatures=False)
        leaves.append(merkle.leaf_hash(view.tx_id))
    values: dict[str, FieldValue] = {
        "height": height,
        "parent": parent,
        "timestamp_ms": timestamp_ms,
        "state_root": state_root,
        "tx_root": merkle.root_of_leaf_hashes(leaves),
        "chunk_root": merkle.chunk_root(payload),
        "tx_count": len(bufs),
        "payload": payload,
    }
    return build_frame(BLOCK_SCHEMAS[FrameKind.BLOCK], values, signer, chain_id)


def parse_frame(
    buf: Buf,
    schemas: Mapping[int, Schema],
    *,
    chain_id: int | None = None,
    verify_signatures: bool = True,
) -> FrameView:
    """Validate a whole buffer; return its view or raise ``RemoteProtocolError``."""
    machine = IngressMachine(schemas, chain_id=chain_id, verify_signatures=verify_signatures)
    machine.receive_data(buf)
    machine.end_of_stream()
    first = machine.next_event()
    if isinstance(first, FrameRejected):
        raise first.error()
    assert isinstance(first, FrameAccepted)
    trailing = machine.next_event()
    if isinstance(trailing, FrameRejected):
        raise trailing.error()
    return first.view


def parse_tx(buf: Buf, *, chain_id: int | None = None, verify_signatures: bool = True) -> TxView:
    """Validate a whole tx frame (stages 1-4) and return its view."""
    view = parse_frame(buf, TX_SCHEMAS, chain_id=chain_id, verify_signatures=verify_signatures)
    assert isinstance(view, TxView)
    return view


class _BlockMemo:
    """The last ``size`` blocks :func:`parse_block` accepted, by exact content (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._views: OrderedDict[bytes, tuple[BlockView, int | None, bool]] = OrderedDict()

    def get(self, buf: bytes, chain_id: int | None, verified: bool) -> BlockView | None:
        """The view of ``buf`` if it was accepted under at least these checks."""
        with self._lock:
            hit = self._views.get(buf)
            if hit is None:
                return None
            view, chain, sig = hit
            if (chain_id is not None and chain != chain_id) or (verified and not sig):
                return None
            self._views.move_to_end(buf)
            return view

    def put(self, buf: bytes, view: BlockView, chain_id: int | None, verified: bool) -> None:
        with self._lock:
            self._views[buf] = (view, chain_id, verified)
            self._views.move_to_end(buf)
            while len(self._views) > self.size:
                self._views.popitem(last=False)


_BLOCKS = _BlockMemo(8)


def parse_block(
    buf: Buf, *, chain_id: int | None = None, verify_signatures: bool = True
) -> BlockView:
    """Validate a whole block frame (structure, roots, proposer signature).

    The same ``bytes`` content accepted recently under at least the same checks
    returns the view it gave then (see the module docstring).
    """
    if isinstance(buf, bytes):
        hit = _BLOCKS.get(buf, chain_id, verify_signatures)
        if hit is not None:
            return hit
    view = parse_frame(buf, BLOCK_SCHEMAS, chain_id=chain_id, verify_signatures=verify_signatures)
    assert isinstance(view, BlockView)
    if isinstance(buf, bytes):
        _BLOCKS.put(buf, view, chain_id, verify_signatures)
    return view
