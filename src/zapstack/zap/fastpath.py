"""The whole-buffer fast path of ingress: a frame's header and offsets table in straight-line code.

:func:`check_whole` looks at a frame that arrived complete in one chunk and
either vouches for its header and offsets table (returning the schema, the
signature scheme and the field end offsets) or returns ``None``.  It never
*rejects*: on any anomaly it gives up, and
:class:`~zapstack.zap.ingress.IngressMachine`'s readable check-by-byte
machinery re-derives the exact verdict (stage, code, offset) from the same
bytes.  The block payload and the signature are not checked here; the machine
runs those checks (shared by both paths) after a ``check_whole`` success.

The contract, tested: for every input, the machine's events are the same with
and without this path (fed whole, it is taken; fed in pieces, it is not).
Pure functions over the buffer; no state, no copies.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping

from zapstack.zap.schema import FLAG_SIGNED, HEADER_SIZE, MAGIC, VERSION, Schema
from zapstack.zap.sigschemes import SIG_SIZE, SigScheme

__all__ = ["WholeFrame", "check_whole"]

_HEADER = struct.Struct("<4sBBBBIIHHB")

WholeFrame = tuple[Schema, SigScheme, tuple[int, ...]]
"""What :func:`check_whole` vouches for: the schema, the scheme, each field's end offset."""


@functools.cache
def _table(count: int) -> struct.Struct:
    """Precompiled reader of an offsets table of ``count`` u32 entries."""
    return struct.Struct(f"<{count}I")


_Plan = tuple[Schema, int, tuple[tuple[int, int], ...]]
_PLANS: dict[tuple[int, int], _Plan] = {}
"""(id(schema), scheme) -> (schema, min frame size, per-field (min, max) sizes).

Keyed by identity, not by the schema's value: hashing a frozen schema hashes
every field spec and enum, which cost more than the checks themselves.  The
schema is kept in the entry (so its id cannot be reused) and compared on use;
there are a handful of schema objects, so the table stays tiny."""


def _plan(schema: Schema, scheme: SigScheme) -> _Plan:
    """The precomputed sizes of ``schema`` signed with ``scheme``."""
    key = (id(schema), scheme)
    plan = _PLANS.get(key)
    if plan is None or plan[0] is not schema:
        bounds = tuple(f.size_bounds(scheme) for f in schema.fields)
        plan = _PLANS[key] = (schema, schema.min_size(scheme), bounds)
    return plan


_SCHEMES = {int(s): s for s in SigScheme}


def check_whole(
    data: bytes | memoryview, schemas: Mapping[int, Schema], chain_id: int | None
) -> WholeFrame | None:
    """Header and offsets table of the complete frame ``data``, or None on any anomaly.

    Parameters: ``data`` is the whole stream (a frame and nothing more, or it
    fails), ``schemas`` the kind -> schema table the stream accepts, and
    ``chain_id`` the chain the frame must name (None: any).
    """
    n = len(data)
    if n < HEADER_SIZE:
        return None
    magic, kind, ver, flags, scheme, total, chain, count, sig_len, res = _HEADER.unpack_from(
        data, 0
    )
    schema = schemas.get(kind)
    if (
        schema is None
        or magic != MAGIC
        or ver != VERSION
        or flags != FLAG_SIGNED
        or scheme not in schema.schemes
        or total != n
        or res != 0
        or count != len(schema.fields)
        or (chain_id is not None and chain != chain_id)
    ):
        return None
    sch = _SCHEMES[scheme]
    _, min_size, bounds = _plan(schema, sch)
    if sig_len != SIG_SIZE[sch] or not min_size <= total <= schema.max_size:
        return None
    ends = _table(count).unpack_from(data, HEADER_SIZE)
    start = schema.table_end
    for end, (low, high) in zip(ends, bounds, strict=True):
        if end < start + low or end > start + high:
            return None
        start = end
    if start != total - sig_len:
        return None
    return schema, sch, tuple(ends)
