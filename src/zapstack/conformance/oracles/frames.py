"""A readable model of ZAP frame ingress, written from ``docs/formats/zap.md`` alone.

The oracle of the ``frames`` suite: :func:`verdict` takes the bytes a peer sends
on a stream (then FIN), the stream kind and the receiver's chain id, and
returns the suite's ``expected`` object (``docs/formats/vectors-frames.md``):
the stream's verdict, accepted with kind, id and fields, or rejected with
``(stage, code, offset)``.  It imports nothing from :mod:`zapstack.zap`; its
tables are re-derived from zap.md §1-§4 and its checks are a straight walk
over the bytes in offset order (each check needs the byte it is pinned to;
when that byte is missing the frame is ``TRUNCATED`` at the number of bytes
received, in the stage of that check).  Signatures: Ed25519 through the
readable strict model :mod:`.ed25519` (zap.md §4.1), ML-DSA-65 through
``cryptography`` (FIPS 204).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PublicKey

from zapstack.conformance.oracles import ed25519

__all__ = ["CODES", "KINDS", "Rejected", "verdict"]

MAGIC = b"\x7fZAP"
HEADER = 21
MAX_TXS = 10_000
CHUNK = 65_536

CODES = {
    "BAD_MAGIC": 0x10, "UNKNOWN_KIND": 0x11, "BAD_VERSION": 0x12, "BAD_FLAGS": 0x13,
    "BAD_SCHEME": 0x14, "BAD_LENGTH": 0x15, "BAD_CHAIN": 0x16, "BAD_FIELD_COUNT": 0x17,
    "BAD_SIG_LENGTH": 0x18, "BAD_RESERVED": 0x19, "OFFSET_OVERRUN": 0x1A, "BAD_FIELD": 0x1B,
    "TRUNCATED": 0x1C, "TRAILING_DATA": 0x1D, "BAD_SIGNATURE": 0x1E,
}  # fmt: skip
"""zap.md §8: the ingress wire codes."""

SCHEMES = {1: (32, 64), 2: (1952, 3309)}
"""zap.md §4: scheme id -> (public key size, signature size)."""

FIXED = {"u32": 4, "u64": 8, "b32": 32}
"""zap.md §2: fixed-size field types."""

# zap.md §3: kind -> (fields as (name, type, max), max total_length)
KINDS: dict[int, tuple[list[tuple[str, str, int]], int]] = {
    0x01: (
        [("pubkey", "pubkey", 0), ("recipient", "b32", 0), ("amount", "u64", 0),
         ("fee", "u64", 0), ("nonce", "u64", 0)],
        32768,
    ),
    0x02: (
        [("pubkey", "pubkey", 0), ("target", "b32", 0), ("fee", "u64", 0),
         ("nonce", "u64", 0), ("data", "bytes", 16384)],
        32768,
    ),
    0xB1: (
        [("height", "u64", 0), ("parent", "b32", 0), ("timestamp_ms", "u64", 0),
         ("pubkey", "pubkey", 0), ("state_root", "b32", 0), ("tx_root", "b32", 0),
         ("chunk_root", "b32", 0), ("tx_count", "u32", 0), ("payload", "payload", 67108864)],
        67108864,
    ),
}  # fmt: skip
STREAMS = {"tx": (0x01, 0x02), "block": (0xB1,)}
DOMAINS = {0x01: b"lux/zap/tx/v1", 0x02: b"lux/zap/tx/v1", 0xB1: b"lux/zap/block/v1"}


class Rejected(Exception):
    """A frame verdict ``(stage, code, offset)``."""

    def __init__(self, stage: str, code: str, offset: int) -> None:
        super().__init__(f"{stage} {code} at {offset}")
        self.stage, self.code, self.offset = stage, code, offset


@dataclass(frozen=True)
class Frame:
    """What the walk learnt about an accepted frame."""

    kind: int
    scheme: int
    total: int
    ends: list[int]


def _u(data: bytes, at: int, size: int) -> int:
    return int.from_bytes(data[at : at + size], "little")


def _bounds(ftype: str, fmax: int, scheme: int) -> tuple[int, int]:
    if ftype == "pubkey":
        return SCHEMES[scheme][0], SCHEMES[scheme][0]
    if ftype in FIXED:
        return FIXED[ftype], FIXED[ftype]
    return 0, fmax


def _walk(data: bytes, kinds: tuple[int, ...], chain_id: int | None, verify: bool) -> Frame:
    """Stages 1-4 over ``data`` (zap.md §1, §8); bytes after the frame are not looked at."""

    def need(pos: int, stage: str) -> None:
        if pos >= len(data):
            raise Rejected(stage, "TRUNCATED", len(data))

    for i in range(4):
        need(i, "MAGIC")
        if data[i] != MAGIC[i]:
            raise Rejected("MAGIC", "BAD_MAGIC", i)
    need(4, "SCHEMA")
    kind = data[4]
    if kind not in kinds:
        raise Rejected("SCHEMA", "UNKNOWN_KIND", 4)
    fields, max_total = KINDS[kind]
    need(5, "HEADER")
    if data[5] != 1:
        raise Rejected("HEADER", "BAD_VERSION", 5)
    need(6, "HEADER")
    if data[6] != 0x01:  # bit 0 set, bits 1..7 clear
        raise Rejected("HEADER", "BAD_FLAGS", 6)
    need(7, "HEADER")
    scheme = data[7]
    if scheme not in SCHEMES:
        raise Rejected("HEADER", "BAD_SCHEME", 7)
    need(11, "HEADER")
    total = _u(data, 8, 4)
    table_end = HEADER + 4 * len(fields)
    min_total = table_end + sum(_bounds(t, m, scheme)[0] for _, t, m in fields)
    min_total += SCHEMES[scheme][1]
    if not min_total <= total <= max_total:
        raise Rejected("HEADER", "BAD_LENGTH", 11)
    need(15, "HEADER")
    if chain_id is not None and _u(data, 12, 4) != chain_id:
        raise Rejected("HEADER", "BAD_CHAIN", 15)
    need(17, "HEADER")
    if _u(data, 16, 2) != len(fields):
        raise Rejected("HEADER", "BAD_FIELD_COUNT", 17)
    need(19, "HEADER")
    if _u(data, 18, 2) != SCHEMES[scheme][1]:
        raise Rejected("HEADER", "BAD_SIG_LENGTH", 19)
    need(20, "HEADER")
    if data[20] != 0:
        raise Rejected("HEADER", "BAD_RESERVED", 20)
    body_end = total - SCHEMES[scheme][1]
    ends: list[int] = []
    for i, (_, ftype, fmax) in enumerate(fields):
        pos = HEADER + 4 * i + 3
        need(pos, "BODY")
        end = _u(data, pos - 3, 4)
        start = ends[-1] if ends else table_end
        lo, hi = _bounds(ftype, fmax, scheme)
        last = i == len(fields) - 1
        if not start + lo <= end <= start + hi or end > body_end or (last and end != body_end):
            raise Rejected("BODY", "OFFSET_OVERRUN", pos)
        ends.append(end)
    if kind == 0xB1:
        need(ends[-1] - 1, "BODY")
        _check_payload(data, ends)
    need(total - 1, "BODY")
    if verify and not _signature_ok(data, kind, scheme, total, ends):
        raise Rejected("BODY", "BAD_SIGNATURE", total - 1)
    return Frame(kind, scheme, total, ends)


def leaf_hash(x: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + x).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """zap.md §7 (RFC 6962 shape) over leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


def digest(data: bytes, kind: int, total: int, scheme: int) -> bytes:
    """zap.md §5: the transcript digest over the signed region."""
    signed = data[: total - SCHEMES[scheme][1]]
    return hashlib.sha256(DOMAINS[kind] + b"\x00" + signed).digest()


def _span(kind: int, ends: list[int], name: str) -> tuple[int, int]:
    """The byte range of field ``name``: from the previous field's end (or the table end)."""
    names = [n for n, _, _ in KINDS[kind][0]]
    i = names.index(name)
    return (ends[i - 1] if i else HEADER + 4 * len(names)), ends[i]


def _check_payload(data: bytes, ends: list[int]) -> None:
    """zap.md §6: tx frames back to back, ``tx_count`` of them, then both roots."""
    start, end = _span(0xB1, ends, "payload")
    p, leaves = start, list[bytes]()
    while p < end:
        if len(leaves) == MAX_TXS:
            raise Rejected("BODY", "BAD_FIELD", p)
        rest = data[p:end]  # the embedded frame is read as a tx stream of the rest
        try:
            tx = _walk(rest, STREAMS["tx"], _u(data, 12, 4), verify=False)
        except Rejected as rej:
            raise Rejected("BODY", "BAD_FIELD", p + rej.offset) from rej
        leaves.append(leaf_hash(digest(rest, tx.kind, tx.total, tx.scheme)))
        p += tx.total
    payload = data[start:end]
    chunks = [leaf_hash(payload[j : j + CHUNK]) for j in range(0, len(payload), CHUNK)]
    count_at, _ = _span(0xB1, ends, "tx_count")
    tx_root, chunk_root = _span(0xB1, ends, "tx_root"), _span(0xB1, ends, "chunk_root")
    ok = (
        _u(data, count_at, 4) == len(leaves)
        and data[tx_root[0] : tx_root[1]] == merkle_root(leaves)
        and data[chunk_root[0] : chunk_root[1]] == merkle_root(chunks)
    )
    if not ok:
        raise Rejected("BODY", "BAD_FIELD", end - 1)


def _signature_ok(data: bytes, kind: int, scheme: int, total: int, ends: list[int]) -> bool:
    lo, hi = _span(kind, ends, "pubkey")
    pk = data[lo:hi]
    msg, sig = digest(data, kind, total, scheme), data[total - SCHEMES[scheme][1] : total]
    if scheme == 1:
        return ed25519.verify_strict(pk, msg, sig)
    try:
        MLDSA65PublicKey.from_public_bytes(pk).verify(sig, msg, b"")
    except (InvalidSignature, ValueError):
        return False
    return True


def verdict(data: bytes, stream: str, chain_id: int | None) -> dict[str, Any]:
    """The stream's verdict (vectors-frames.md): the frame's, or TRAILING_DATA after it."""
    try:
        frame = _walk(data, STREAMS[stream], chain_id, verify=True)
    except Rejected as rej:
        return {"verdict": "rejected", "stage": rej.stage, "code": CODES[rej.code],
                "offset": rej.offset}  # fmt: skip
    if len(data) > frame.total:
        return {"verdict": "rejected", "stage": "BODY", "code": CODES["TRAILING_DATA"],
                "offset": frame.total}  # fmt: skip
    fields: dict[str, Any] = {}
    for name, ftype, _ in KINDS[frame.kind][0]:
        lo, hi = _span(frame.kind, frame.ends, name)
        raw = data[lo:hi]
        fields[name] = int.from_bytes(raw, "little") if ftype in ("u32", "u64") else raw.hex()
    ident = (
        hashlib.sha256(data[: frame.total]).digest()
        if frame.kind == 0xB1
        else digest(data, frame.kind, frame.total, frame.scheme)
    )
    return {"verdict": "accepted", "kind": frame.kind, "id": ident.hex(), "fields": fields}
