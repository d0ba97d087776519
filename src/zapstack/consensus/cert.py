"""QuasarCert: one struct, one field per leg (``docs/formats/quasarcert.md``).

Wire layout (big-endian)::

    magic "QCRT" | version u8 (=1) | chain_id u64 | height u64 | round u32
    | block_id 32 | vset_root 32
    | len u32 | bls      | len u32 | pulsar | len u32 | corona | len u32 | magnetar

An absent leg is a zero-length field; the shape never changes however many
legs arrived.  :func:`decode` is strict (every byte accounted for, each field at
most :data:`MAX_FIELD_LEN`) and reports any malformed input as
:class:`InvalidCert`, never another exception.  :func:`verify_cert` checks every
non-empty field at threshold against the validator set and returns the set of
*present* legs; a non-empty field that does not verify makes the whole cert
invalid (an honest aggregator publishes an empty field instead).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, replace

from zapstack.consensus.digest import CertContext, LegId, block_id
from zapstack.consensus.legs import bls as bls_leg
from zapstack.consensus.legs import magnetar as magnetar_leg
from zapstack.consensus.legs import pulsar as pulsar_leg
from zapstack.consensus.validators import ValidatorSet
from zapstack.errors import InvalidCert

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "MAX_FIELD_LEN",
    "VERSION",
    "CertVerdict",
    "QuasarCert",
    "decode",
    "verify_cert",
]

MAGIC = b"QCRT"
VERSION = 1
MAX_FIELD_LEN = 1 << 24
"""16 MiB per leg field: room for a Magnetar QC of ~980 SLH-DSA signatures."""
_HEADER = struct.Struct(">4sBQQI32s32s")
HEADER_SIZE = _HEADER.size  # 89
_LEN = struct.Struct(">I")
LEGS = tuple(LegId)


@dataclass(frozen=True, slots=True)
class QuasarCert:
    """A decoded certificate; leg fields are raw bytes (empty = absent)."""

    chain_id: int
    height: int
    round: int
    block_id: bytes
    """sha256 of the certified block's bytes."""
    vset_root: bytes
    """Root of the validator set the legs were signed under."""
    bls: bytes = b""
    pulsar: bytes = b""
    corona: bytes = b""
    magnetar: bytes = b""

    def context(self) -> CertContext:
        """The transcript every leg signed (raises InvalidCert on bad header values)."""
        return CertContext(self.chain_id, self.height, self.round, self.block_id, self.vset_root)

    def field(self, leg: LegId) -> bytes:
        """The field of ``leg``."""
        value: bytes = getattr(self, leg.label)
        return value

    def with_field(self, leg: LegId, value: bytes) -> QuasarCert:
        """A copy with ``leg``'s field replaced."""
        b, p, c, m = (value if other is leg else self.field(other) for other in LEGS)
        return replace(self, bls=b, pulsar=p, corona=c, magnetar=m)

    def encode(self) -> bytes:
        """The canonical wire bytes."""
        out = bytearray(
            _HEADER.pack(
                MAGIC,
                VERSION,
                self.chain_id,
                self.height,
                self.round,
                self.block_id,
                self.vset_root,
            )
        )
        for leg in LEGS:
            value = self.field(leg)
            if len(value) > MAX_FIELD_LEN:
                raise InvalidCert(f"{leg.label} field exceeds {MAX_FIELD_LEN} bytes", leg=leg.label)
            out += _LEN.pack(len(value)) + value
        return bytes(out)

    @classmethod
    def empty(cls, ctx: CertContext) -> QuasarCert:
        """A cert for ``ctx`` with every leg absent."""
        return cls(ctx.chain_id, ctx.height, ctx.round, ctx.block_id, ctx.vset_root)


def decode(data: bytes | bytearray | memoryview) -> QuasarCert:
    """Parse wire bytes; :class:`InvalidCert` names the first problem and its offset."""
    buf = memoryview(data)
    if len(buf) < HEADER_SIZE:
        raise InvalidCert(f"cert truncated in the header: {len(buf)} of {HEADER_SIZE} bytes")
    magic, version, chain_id, height, round_, bid, root = _HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise InvalidCert(f"bad cert magic {bytes(magic)!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise InvalidCert(f"unsupported cert version {version}, expected {VERSION}")
    pos = HEADER_SIZE
    fields: list[bytes] = []
    for leg in LEGS:
        if len(buf) - pos < _LEN.size:
            raise InvalidCert(
                f"cert truncated at the {leg.label} length (offset {pos})", leg=leg.label
            )
        (n,) = _LEN.unpack_from(buf, pos)
        pos += _LEN.size
        if n > MAX_FIELD_LEN:
            raise InvalidCert(
                f"{leg.label} field length {n} exceeds {MAX_FIELD_LEN} (offset {pos - 4})",
                leg=leg.label,
            )
        if len(buf) - pos < n:
            raise InvalidCert(
                f"cert truncated inside the {leg.label} field: {len(buf) - pos} of {n} bytes",
                leg=leg.label,
            )
        fields.append(bytes(buf[pos : pos + n]))
        pos += n
    if pos != len(buf):
        raise InvalidCert(f"{len(buf) - pos} trailing bytes after the cert (offset {pos})")
    b, p, c, m = fields
    return QuasarCert(chain_id, height, round_, bytes(bid), bytes(root), b, p, c, m)


@dataclass(frozen=True, slots=True)
class CertVerdict:
    """What a verified cert proves."""

    present: frozenset[LegId]
    """Legs whose field is non-empty and verifies at threshold."""
    signers: dict[LegId, tuple[int, ...]]
    """Accountable signers per present leg (empty tuple for Corona)."""


def _corona_verify(vset: ValidatorSet, ctx: CertContext, field: bytes) -> list[int]:
    from zapstack.consensus.legs import corona  # numpy-heavy: imported on first use

    return corona.verify(vset, ctx, field)


LEG_VERIFIERS: dict[LegId, Callable[[ValidatorSet, CertContext, bytes], list[int]]] = {
    LegId.BLS: bls_leg.verify,
    LegId.PULSAR: pulsar_leg.verify,
    LegId.CORONA: _corona_verify,
    LegId.MAGNETAR: magnetar_leg.verify,
}
"""Leg -> verifier of a non-empty field (raises InvalidCert)."""


def verify_cert(
    cert: QuasarCert, vset: ValidatorSet, *, block_bytes: bytes | None = None
) -> CertVerdict:
    """Verify every non-empty leg of ``cert``; return the present legs.

    ``block_bytes``, when given, must hash to ``cert.block_id``.  Raises
    :class:`InvalidCert` on a wrong block, a foreign validator set, or any
    non-empty field that fails its leg's check.
    """
    if block_bytes is not None and block_id(block_bytes) != cert.block_id:
        raise InvalidCert("cert certifies another block: block_id != sha256(block bytes)")
    if cert.vset_root != vset.root:
        raise InvalidCert("cert was signed under another validator set (vset_root mismatch)")
    try:
        ctx = cert.context()
    except Exception as exc:
        raise InvalidCert(f"cert header out of range: {exc}") from exc
    present: set[LegId] = set()
    signers: dict[LegId, tuple[int, ...]] = {}
    for leg in LEGS:
        value = cert.field(leg)
        if value:
            signers[leg] = tuple(LEG_VERIFIERS[leg](vset, ctx, value))
            present.add(leg)
    return CertVerdict(frozenset(present), signers)
