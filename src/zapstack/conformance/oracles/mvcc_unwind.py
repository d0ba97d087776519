"""A readable model of the ``mvcc_unwind`` vectors, written from ``docs/formats/vectors-mvcc.md``.

The oracle of the suite: :func:`expected` replays a case's ``input`` on plain
dicts (a branch is a full copy of the head plus an undo log) and computes the
root with the readable definition of ``docs/formats/state-root.md``
(:func:`zapstack.zapdb.smt.reference_root`) -- never with ZapDB's store,
transactions or optimised tree.  :meth:`_Model.apply` dispatches through two
tables: ops on the head and ops on an open branch; ``discard`` and
``rollback`` are legal on a closed branch, every other branch op answers
``closed`` there; a never-opened name is a closed branch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zapstack.conformance.envelope import CaseRejected
from zapstack.conformance.mvcc_input import OP_FIELDS, check_input
from zapstack.zapdb.smt import reference_root

__all__ = ["expected", "expected_or_error"]


class _MBranch:
    """Model of one branch: a full copy of the state plus an undo log."""

    def __init__(self, base: dict[bytes, bytes], version: int) -> None:
        self.state = dict(base)
        self.version = version
        self.log: list[tuple[bytes, bytes | None]] = []
        self.marks: list[tuple[str, int]] = []
        self.closed = False

    def write(self, key: bytes, value: bytes | None) -> None:
        self.log.append((key, self.state.get(key)))
        if value is None:
            self.state.pop(key, None)
        else:
            self.state[key] = value

    def rollback(self, diff: str) -> str:
        """Undo the writes of tx ``diff`` and every later one; ``noop`` if unknown or closed."""
        for i in range(len(self.marks) - 1, -1, -1):
            if self.marks[i][0] == diff and not self.closed:
                start = self.marks[i][1]
                for key, prior in reversed(self.log[start:]):
                    if prior is None:
                        self.state.pop(key, None)
                    else:
                        self.state[key] = prior
                del self.log[start:]
                del self.marks[i:]
                return "ok"
        return "noop"


class _NeverOpened(_MBranch):
    """A branch name no ``snapshot`` op opened: it behaves as a closed branch."""

    def __init__(self) -> None:
        super().__init__({}, 0)
        self.closed = True


_NEVER_OPENED = _NeverOpened()


def _hex_or_none(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


class _Model:
    """The executable meaning of the vector format.

    :meth:`apply` dispatches through two tables: ops on the head
    (:data:`_HEAD_OPS`) and ops on an open branch (:data:`_BRANCH_OPS`);
    ``discard`` and ``rollback`` are legal on a closed branch, every other
    branch op answers ``closed`` there.
    """

    def __init__(self, initial: dict[bytes, bytes]) -> None:
        self.head = dict(initial)
        self.version = 1
        self.snaps: dict[str, _MBranch] = {}

    def apply(self, op: dict[str, Any]) -> str:
        """Apply one op; return its result (``docs/formats/vectors-mvcc.md``)."""
        kind = op["op"]
        if kind not in OP_FIELDS:
            raise CaseRejected("BAD_INPUT", f"unknown op {kind!r}")
        head_op = _HEAD_OPS.get(kind)
        if head_op is not None:
            return head_op(self, op)
        br = self.snaps.get(op["snap"], _NEVER_OPENED)
        if kind == "discard":
            br.closed = True
            return "ok"
        if kind == "rollback":
            return br.rollback(op["diff"])
        if br.closed:
            return "closed"
        return _BRANCH_OPS[kind](self, br, op)

    def _insert(self, op: dict[str, Any]) -> str:
        self.head[bytes.fromhex(op["key"])] = bytes.fromhex(op["value"])
        self.version += 1
        return "ok"

    def _delete(self, op: dict[str, Any]) -> str:
        self.head.pop(bytes.fromhex(op["key"]), None)
        self.version += 1
        return "ok"

    def _snapshot(self, op: dict[str, Any]) -> str:
        old = self.snaps.get(op["snap"])
        if old is not None:  # the name is reused: the old branch is discarded first
            old.closed = True
        self.snaps[op["snap"]] = _MBranch(self.head, self.version)
        return "ok"

    def _write_on(self, br: _MBranch, op: dict[str, Any]) -> str:
        br.write(bytes.fromhex(op["key"]), _hex_or_none(op.get("value")))
        return "ok"

    def _tx(self, br: _MBranch, op: dict[str, Any]) -> str:
        start = len(br.log)
        for key, value in op["writes"]:
            br.write(bytes.fromhex(key), _hex_or_none(value))
        br.marks.append((op["diff"], start))
        return "ok"

    def _root_on(self, br: _MBranch, op: dict[str, Any]) -> str:
        return reference_root(br.state).hex()

    def _commit(self, br: _MBranch, op: dict[str, Any]) -> str:
        br.closed = True
        if br.version != self.version:
            return "conflict"
        self.head = br.state
        self.version += 1
        return "ok"


_HEAD_OPS: dict[str, Callable[[_Model, dict[str, Any]], str]] = {
    "insert": _Model._insert,
    "delete": _Model._delete,
    "snapshot": _Model._snapshot,
}
"""Ops on the head: op name -> model method."""

_BRANCH_OPS: dict[str, Callable[[_Model, _MBranch, dict[str, Any]], str]] = {
    "insert_on": _Model._write_on,
    "delete_on": _Model._write_on,
    "tx": _Model._tx,
    "root_on": _Model._root_on,
    "commit": _Model._commit,
}
"""Ops on an open branch: op name -> model method."""


def expected(inp: dict[str, Any]) -> dict[str, Any]:
    """The ``expected`` object of an ``mvcc_unwind`` input (``CaseRejected`` if malformed)."""
    check_input(inp)
    initial = {bytes.fromhex(k): bytes.fromhex(v) for k, v in inp["initial"]}
    model = _Model(initial)
    results = [model.apply(op) for op in inp["ops"]]
    return {
        "results": results,
        "root": reference_root(model.head).hex(),
        "version": model.version,
        "entries": len(model.head),
    }


def expected_or_error(inp: dict[str, Any]) -> dict[str, Any]:
    """Like :func:`expected`; a malformed input gives ``{"error": "BAD_INPUT"}``."""
    try:
        return expected(inp)
    except CaseRejected as rej:
        return {"error": rej.error}
