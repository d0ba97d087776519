"""The ``mvcc_unwind`` input shape (``docs/formats/vectors-mvcc.md``), checked before a run.

An input that breaks it is refused with ``{"error": "BAD_INPUT"}``: ``initial``
not a list of ``[key hex, value hex]``, ``write_order_seed`` not a u32, an op
that is not an object, has an unknown ``op`` or lacks a field of its row.
:data:`EDGES` holds the hand-picked op lists of the generator's edge cases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zapstack.conformance.envelope import CaseRejected

__all__ = ["EDGES", "OP_FIELDS", "check_input"]

_HEX = "hex"
OP_FIELDS: dict[str, dict[str, str]] = {
    "insert": {"key": _HEX, "value": _HEX},
    "delete": {"key": _HEX},
    "snapshot": {"snap": "str"},
    "insert_on": {"snap": "str", "key": _HEX, "value": _HEX},
    "delete_on": {"snap": "str", "key": _HEX},
    "tx": {"snap": "str", "writes": "writes", "diff": "str"},
    "rollback": {"snap": "str", "diff": "str"},
    "root_on": {"snap": "str"},
    "commit": {"snap": "str"},
    "discard": {"snap": "str"},
}
"""op -> its required fields and their types (vectors-mvcc.md §Operations)."""


def _is_hex(value: object, nullable: bool = False) -> bool:
    if value is None:
        return nullable
    if not isinstance(value, str):
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def _is_pair(item: object, nullable: bool) -> bool:
    return (
        isinstance(item, list)
        and len(item) == 2
        and _is_hex(item[0])
        and _is_hex(item[1], nullable)
    )


_TYPE_OK: dict[str, Callable[[object], bool]] = {
    _HEX: _is_hex,
    "str": lambda v: isinstance(v, str),
    "writes": lambda v: isinstance(v, list) and all(_is_pair(w, True) for w in v),
}


def check_input(inp: dict[str, Any]) -> None:
    """Raise ``CaseRejected("BAD_INPUT")`` unless ``inp`` has the documented shape."""
    initial, ops, seed = inp.get("initial"), inp.get("ops"), inp.get("write_order_seed")
    if not isinstance(initial, list) or not all(_is_pair(kv, False) for kv in initial):
        raise CaseRejected("BAD_INPUT", "initial must be a list of [key hex, value hex]")
    if type(seed) is not int or not 0 <= seed < 1 << 32:
        raise CaseRejected("BAD_INPUT", "write_order_seed must be a u32")
    if not isinstance(ops, list):
        raise CaseRejected("BAD_INPUT", "ops must be a list")
    for op in ops:
        fields = OP_FIELDS.get(str(op.get("op"))) if isinstance(op, dict) else None
        if fields is None or not all(_TYPE_OK[t](op.get(f)) for f, t in fields.items()):
            raise CaseRejected("BAD_INPUT", f"malformed op {op!r}")


def _put(snap: str, key: str, value: str) -> dict[str, Any]:
    return {"op": "insert_on", "snap": snap, "key": key, "value": value}


def _tx(snap: str, diff: str, key: str, value: str | None) -> dict[str, Any]:
    return {"op": "tx", "snap": snap, "writes": [[key, value]], "diff": diff}


EDGES: dict[str, list[dict[str, Any]]] = {
    "never-opened": [
        _put("ghost", "6b01", "02"),
        _tx("ghost", "d", "6b01", "02"),
        {"op": "rollback", "snap": "ghost", "diff": "d"},
        {"op": "root_on", "snap": "ghost"},
        {"op": "commit", "snap": "ghost"},
        {"op": "discard", "snap": "ghost"},
    ],
    "reused-diff-name": [
        {"op": "snapshot", "snap": "a"},
        _tx("a", "d", "6b01", "01"),
        _tx("a", "d", "6b02", "02"),
        {"op": "rollback", "snap": "a", "diff": "d"},
        {"op": "root_on", "snap": "a"},
        {"op": "rollback", "snap": "a", "diff": "d"},
        {"op": "rollback", "snap": "a", "diff": "d"},
        {"op": "commit", "snap": "a"},
    ],
    "diff-of-another-branch": [
        {"op": "snapshot", "snap": "a"},
        {"op": "snapshot", "snap": "b"},
        _tx("a", "d", "6b01", "01"),
        {"op": "rollback", "snap": "b", "diff": "d"},
        {"op": "commit", "snap": "a"},
    ],
    "reused-branch-name": [
        {"op": "snapshot", "snap": "a"},
        _tx("a", "d", "6b01", "01"),
        {"op": "snapshot", "snap": "a"},
        {"op": "rollback", "snap": "a", "diff": "d"},
        _put("a", "6b03", "03"),
        {"op": "commit", "snap": "a"},
    ],
}
"""Hand-picked cases for the rules of vectors-mvcc.md §"Branch and diff names"."""
