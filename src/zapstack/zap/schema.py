"""Frame kinds and their body schemas: the TxKind dispatch table.

A schema is an ordered list of fields.  Each field has a type that fixes its
size (``U32``, ``U64``, ``B32``), ties it to the frame's signature scheme
(``PUBKEY``: exactly the scheme's public-key size) or bounds it (``BYTES``:
``0..max`` bytes, ``PAYLOAD``: a concatenation of tx frames).  The ingress
machine validates every offset-table entry against these sizes as soon as the
entry's four bytes arrive.  ``docs/formats/zap.md`` lists the same tables; a
test keeps the document and this module equal.  The fixed 21-byte header that
precedes every body (``MAGIC``, ``VERSION``, ``FLAG_SIGNED``, ``HEADER_SIZE``)
is defined here too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from zapstack.zap.sigschemes import PK_SIZE, SIG_SIZE, SigScheme

__all__ = [
    "BLOCK_SCHEMAS",
    "FLAG_SIGNED",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_BLOCK_SIZE",
    "MAX_CALL_DATA",
    "MAX_TXS_PER_BLOCK",
    "MAX_TX_SIZE",
    "TX_SCHEMAS",
    "VERSION",
    "FieldSpec",
    "FieldType",
    "FrameKind",
    "Schema",
]

MAGIC: Final = b"\x7fZAP"
"""Bytes 0..3 of every frame."""
VERSION: Final = 1
"""Byte 5: the only frame version."""
FLAG_SIGNED: Final = 0x01
"""Byte 6: the signature-present bit (the only flag; mandatory)."""
HEADER_SIZE: Final = 21
"""Bytes before the offsets table."""

MAX_TX_SIZE = 32 * 1024
"""Largest tx frame in bytes (an ML-DSA-65 call tx with 16 KiB data fits)."""
MAX_CALL_DATA = 16 * 1024
"""Largest ``data`` field of a call tx."""
MAX_TXS_PER_BLOCK = 10_000
"""Largest ``tx_count`` of a block."""
MAX_BLOCK_SIZE = 64 * 1024 * 1024
"""Largest block frame in bytes."""


class FrameKind(enum.IntEnum):
    """Byte 4 of every frame."""

    TRANSFER = 0x01
    CALL = 0x02
    BLOCK = 0xB1


class FieldType(enum.Enum):
    """How a field's size is constrained."""

    U32 = "u32"
    U64 = "u64"
    B32 = "b32"
    PUBKEY = "pubkey"
    BYTES = "bytes"
    PAYLOAD = "payload"


_FIXED: dict[FieldType, int] = {FieldType.U32: 4, FieldType.U64: 8, FieldType.B32: 32}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a schema."""

    name: str
    """Field name; views expose it by this name."""
    type: FieldType
    """Size rule."""
    max_size: int = 0
    """Upper bound for BYTES / PAYLOAD fields (inclusive)."""

    def size_bounds(self, scheme: SigScheme) -> tuple[int, int]:
        """(min, max) byte size of this field for a frame signed with ``scheme``."""
        fixed = _FIXED.get(self.type)
        if fixed is not None:
            return fixed, fixed
        if self.type is FieldType.PUBKEY:
            return PK_SIZE[scheme], PK_SIZE[scheme]
        return 0, self.max_size


@dataclass(frozen=True, slots=True)
class Schema:
    """The body layout of one frame kind."""

    kind: FrameKind
    fields: tuple[FieldSpec, ...]
    max_size: int
    """Largest total frame length of this kind."""
    schemes: frozenset[SigScheme]
    """Signature schemes allowed; a signature is mandatory for every kind defined here."""
    index: dict[str, int] = field(default_factory=dict, compare=False)
    """Field name -> position (filled in ``__post_init__``)."""

    def __post_init__(self) -> None:
        self.index.update({f.name: i for i, f in enumerate(self.fields)})

    @property
    def table_end(self) -> int:
        """Offset of the first body field (end of the offsets table)."""
        return HEADER_SIZE + 4 * len(self.fields)

    def min_size(self, scheme: SigScheme) -> int:
        """Smallest total length of a frame of this kind signed with ``scheme``."""
        body = sum(f.size_bounds(scheme)[0] for f in self.fields)
        return self.table_end + body + SIG_SIZE[scheme]


_SIGNED = frozenset({SigScheme.ED25519, SigScheme.MLDSA65})

TRANSFER_SCHEMA = Schema(
    FrameKind.TRANSFER,
    (
        FieldSpec("pubkey", FieldType.PUBKEY),
        FieldSpec("recipient", FieldType.B32),
        FieldSpec("amount", FieldType.U64),
        FieldSpec("fee", FieldType.U64),
        FieldSpec("nonce", FieldType.U64),
    ),
    MAX_TX_SIZE,
    _SIGNED,
)

CALL_SCHEMA = Schema(
    FrameKind.CALL,
    (
        FieldSpec("pubkey", FieldType.PUBKEY),
        FieldSpec("target", FieldType.B32),
        FieldSpec("fee", FieldType.U64),
        FieldSpec("nonce", FieldType.U64),
        FieldSpec("data", FieldType.BYTES, MAX_CALL_DATA),
    ),
    MAX_TX_SIZE,
    _SIGNED,
)

BLOCK_SCHEMA = Schema(
    FrameKind.BLOCK,
    (
        FieldSpec("height", FieldType.U64),
        FieldSpec("parent", FieldType.B32),
        FieldSpec("timestamp_ms", FieldType.U64),
        FieldSpec("pubkey", FieldType.PUBKEY),
        FieldSpec("state_root", FieldType.B32),
        FieldSpec("tx_root", FieldType.B32),
        FieldSpec("chunk_root", FieldType.B32),
        FieldSpec("tx_count", FieldType.U32),
        FieldSpec("payload", FieldType.PAYLOAD, MAX_BLOCK_SIZE),
    ),
    MAX_BLOCK_SIZE,
    _SIGNED,
)

TX_SCHEMAS: dict[int, Schema] = {
    FrameKind.TRANSFER: TRANSFER_SCHEMA,
    FrameKind.CALL: CALL_SCHEMA,
}
"""The tx-stream dispatch table: kinds a tx submit stream accepts."""

BLOCK_SCHEMAS: dict[int, Schema] = {FrameKind.BLOCK: BLOCK_SCHEMA}
"""The block-stream dispatch table."""
