"""Conformance suite ``mvcc_unwind`` (LP-0202 cross-impl vector 1).

Line schema: ``docs/formats/vectors-mvcc.md``.  The generator draws random
operation sequences from ``SEED`` and computes ``expected`` with a plain
dict model (:class:`_Model`) and the readable root definition
(:func:`~zapstack.zapdb.smt.reference_root`) -- never with ZapDB itself.
:func:`run_case` replays the sequence on a real ZapDB opened with the case's
``write_order_seed`` (which shuffles how commits and root updates physically
apply writes) and reports what it observed.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from zapstack.conformance.envelope import Case, CaseRejected
from zapstack.conformance.mvcc_input import EDGES, OP_FIELDS, check_input
from zapstack.errors import ConflictError, StoreError
from zapstack.zapdb.smt import reference_root
from zapstack.zapdb.store import ZapDB
from zapstack.zapdb.txn import Diff, Txn

__all__ = ["NAME", "SEED", "generate", "run_case"]

NAME = "mvcc_unwind"
SEED = 0x2D5A_DB01
CASES = 50
_KEYS = [bytes([0x6B, i]) for i in range(12)] + [b"\x00", b"\xff" * 3, b"acct/alice", b"acct/bob"]


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


def _draw_value(rng: random.Random) -> str:
    return rng.randbytes(rng.randrange(0, 9)).hex()


def _draw_ops(rng: random.Random) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    names: list[str] = []
    diffs: dict[str, list[str]] = {}
    for _ in range(rng.randrange(4, 32)):
        key = rng.choice(_KEYS).hex()
        roll = rng.random()
        if not names or roll < 0.12:
            name = f"s{len(names)}"
            names.append(name)
            diffs[name] = []
            ops.append({"op": "snapshot", "snap": name})
        elif roll < 0.22:
            ops.append({"op": "insert", "key": key, "value": _draw_value(rng)})
        elif roll < 0.27:
            ops.append({"op": "delete", "key": key})
        else:
            snap = rng.choice(names)
            pick = rng.random()
            if pick < 0.3:
                ops.append({"op": "insert_on", "snap": snap, "key": key, "value": _draw_value(rng)})
            elif pick < 0.4:
                ops.append({"op": "delete_on", "snap": snap, "key": key})
            elif pick < 0.6:
                writes = [
                    [rng.choice(_KEYS).hex(), None if rng.random() < 0.2 else _draw_value(rng)]
                    for _ in range(rng.randrange(1, 4))
                ]
                diff = f"{snap}.d{len(diffs[snap])}"
                diffs[snap].append(diff)
                ops.append({"op": "tx", "snap": snap, "writes": writes, "diff": diff})
            elif pick < 0.75 and diffs[snap]:
                ops.append({"op": "rollback", "snap": snap, "diff": rng.choice(diffs[snap])})
            elif pick < 0.83:
                ops.append({"op": "root_on", "snap": snap})
            elif pick < 0.92:
                ops.append({"op": "commit", "snap": snap})
            else:
                ops.append({"op": "discard", "snap": snap})
    return ops


def generate(seed: int) -> list[Case]:
    """``CASES`` cases drawn from ``seed``; expected values come from the model."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for i in range(CASES):
        size = rng.choice((0, 1, 3, 8, 40))
        initial = {
            rng.choice(_KEYS) if size < 10 else rng.randbytes(6): rng.randbytes(4)
            for _ in range(size)
        }
        inp: dict[str, Any] = {
            "initial": [[k.hex(), v.hex()] for k, v in sorted(initial.items())],
            "ops": _draw_ops(rng),
            "write_order_seed": rng.getrandbits(32),
        }
        cases.append(_model_case(f"mvcc-{i:03d}", initial, inp))
    for name, ops in EDGES.items():
        inp = {"initial": [["6b00", "01"]], "ops": ops, "write_order_seed": 7}
        cases.append(_model_case(f"mvcc-edge-{name}", {b"k\x00": b"\x01"}, inp))
    bad = {"initial": [], "ops": [{"op": "rename", "snap": "s0"}], "write_order_seed": 7}
    cases.append(Case(NAME, "mvcc-edge-unknown-op", bad, {"error": "BAD_INPUT"}))
    return cases


def _model_case(case_id: str, initial: dict[bytes, bytes], inp: dict[str, Any]) -> Case:
    model = _Model(initial)
    results = [model.apply(op) for op in inp["ops"]]
    expected = {
        "results": results,
        "root": reference_root(model.head).hex(),
        "version": model.version,
        "entries": len(model.head),
    }
    return Case(NAME, case_id, inp, expected)


_CLOSED_RESULT = {"discard": "ok", "rollback": "noop"}
"""Results of ops on a closed (or never-opened) branch other than ``closed``."""

_Diffs = dict[tuple[str, str], list[Diff]]
"""(branch name, diff name) -> the diffs recorded under that name, oldest first."""


def _rollback(br: Txn, recorded: list[Diff]) -> str:
    """Undo the most recent tx of that name not undone yet (``noop`` if none)."""
    for diff in reversed(recorded):
        if br.rollback(diff):
            return "ok"
    return "noop"


def _run_op(db: ZapDB, snaps: dict[str, Txn], diffs: _Diffs, op: dict[str, Any]) -> str:
    kind = op["op"]
    if kind in ("insert", "delete"):
        with db.begin() as txn:
            key = bytes.fromhex(op["key"])
            if kind == "insert":
                txn.set(key, bytes.fromhex(op["value"]))
            else:
                txn.delete(key)
            txn.commit()
        return "ok"
    if kind == "snapshot":
        old = snaps.get(op["snap"])
        if old is not None:  # a reused name: the old branch is discarded first
            old.discard()
        for stale in [k for k in diffs if k[0] == op["snap"]]:
            del diffs[stale]
        snaps[op["snap"]] = db.snapshot()
        return "ok"
    br = snaps.get(op["snap"])
    if br is None:  # never opened: behaves as a closed branch
        return _CLOSED_RESULT.get(kind, "closed")
    if kind == "discard":
        br.discard()
        return "ok"
    if kind == "rollback":  # a diff recorded only on a closed branch, or elsewhere: noop
        return _rollback(br, diffs.get((op["snap"], op["diff"]), []))
    try:
        if kind == "insert_on":
            br.set(bytes.fromhex(op["key"]), bytes.fromhex(op["value"]))
        elif kind == "delete_on":
            br.delete(bytes.fromhex(op["key"]))
        elif kind == "tx":
            with br.tx() as scope:
                for key, value in op["writes"]:
                    if value is None:
                        br.delete(bytes.fromhex(key))
                    else:
                        br.set(bytes.fromhex(key), bytes.fromhex(value))
            assert scope.diff is not None
            diffs.setdefault((op["snap"], op["diff"]), []).append(scope.diff)
        elif kind == "root_on":
            return br.root().hex()
        else:
            br.commit()
    except ConflictError:
        return "conflict"
    except StoreError:
        return "closed"
    return "ok"


def run_case(case: Case, *, write_order_seed: int | None = None) -> dict[str, Any]:
    """Replay ``case`` on a fresh ZapDB; ``write_order_seed`` overrides the case's."""
    inp = case.input
    check_input(inp)
    seed = inp["write_order_seed"] if write_order_seed is None else write_order_seed
    tmp = tempfile.mkdtemp(prefix="zapdb-vec-")
    try:
        db = ZapDB.open(tmp, map_size=1 << 24, write_order_seed=seed, sync=False)
        try:
            with db.begin() as txn:
                for key, value in inp["initial"]:
                    txn.set(bytes.fromhex(key), bytes.fromhex(value))
                txn.commit()
            snaps: dict[str, Txn] = {}
            diffs: _Diffs = {}
            results = [_run_op(db, snaps, diffs, op) for op in inp["ops"]]
            for br in snaps.values():
                br.discard()
            with db.read() as view:
                entries = sum(1 for _ in view.iterate())
            return {
                "results": results,
                "root": db.root().hex(),
                "version": db.version,
                "entries": entries,
            }
        finally:
            db.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
