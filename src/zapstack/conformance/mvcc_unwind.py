"""Conformance suite ``mvcc_unwind`` (LP-0202 cross-impl vector 1).

Line schema: ``docs/formats/vectors-mvcc.md``.  The generator draws random
operation sequences from ``SEED`` and takes ``expected`` from the independent
model :mod:`zapstack.conformance.oracles.mvcc_unwind` (plain dicts and the
readable root definition) -- never from ZapDB itself.
:func:`run_case` replays the sequence on a real ZapDB opened with the case's
``write_order_seed`` (which shuffles how commits and root updates physically
apply writes) and reports what it observed.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from typing import Any

from zapstack.conformance.envelope import Case
from zapstack.conformance.mvcc_input import EDGES, check_input
from zapstack.conformance.oracles import mvcc_unwind as oracle
from zapstack.errors import ConflictError, StoreError
from zapstack.zapdb.store import ZapDB
from zapstack.zapdb.txn import Diff, Txn

__all__ = ["NAME", "SEED", "generate", "run_case"]

NAME = "mvcc_unwind"
SEED = 0x2D5A_DB01
CASES = 50
_KEYS = [bytes([0x6B, i]) for i in range(12)] + [b"\x00", b"\xff" * 3, b"acct/alice", b"acct/bob"]


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
        cases.append(_model_case(f"mvcc-{i:03d}", inp))
    for name, ops in EDGES.items():
        inp = {"initial": [["6b00", "01"]], "ops": ops, "write_order_seed": 7}
        cases.append(_model_case(f"mvcc-edge-{name}", inp))
    bad = {"initial": [], "ops": [{"op": "rename", "snap": "s0"}], "write_order_seed": 7}
    cases.append(_model_case("mvcc-edge-unknown-op", bad))
    return cases


def _model_case(case_id: str, inp: dict[str, Any]) -> Case:
    return Case(NAME, case_id, inp, oracle.expected_or_error(inp))


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
