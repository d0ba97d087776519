"""Speculative execution: N candidate blocks on branches, commit the winner."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from zapstack.errors import ConflictError, LocalProtocolError, StoreError
from zapstack.testing.unwind import check_unwind_contract
from zapstack.zapdb import Txn, ZapDB, reference_root
from zapstack.zapdb.speculate import Speculation, speculate

Block = list[tuple[bytes, memoryview]]


def _block(tag: int, n: int = 20) -> Block:
    buf = bytes(range(256)) * 2  # one immutable buffer; txs are slices of it
    view = memoryview(buf)
    return [(b"acct/%d/%d" % (tag, i % 7), view[i : i + 16]) for i in range(n)]


def _apply(txn: Txn, block: Block) -> int:
    for key, value in block:
        with txn.tx():
            txn.set(key, value)
    return len(block)


def _contents(db: ZapDB) -> dict[bytes, bytes]:
    with db.read() as view:
        return dict(view.iterate())


def _expected(block: Block) -> dict[bytes, bytes]:
    return {k: bytes(v) for k, v in block}


def test_winner_committed_losers_discarded(db: ZapDB) -> None:
    blocks = {f"b{i}": _block(i) for i in range(3)}
    spec = speculate(db, blocks.items(), _apply)
    assert spec.speculated == ("b0", "b1", "b2")
    for cid in blocks:
        while not spec.ready(cid):
            threading.Event().wait(0.001)
    decision = spec.decide("b1")
    assert decision.speculative and decision.applied_before_decide and decision.result == 20
    assert _contents(db) == _expected(blocks["b1"])
    assert decision.root == db.root() == reference_root(_expected(blocks["b1"]))
    assert spec.decide("b1") is decision
    with pytest.raises(LocalProtocolError):
        spec.decide("b2")
    assert db.snapshot_refs() == 0


def test_width_cap_and_late_winner(db: ZapDB) -> None:
    blocks = [(i, _block(i)) for i in range(5)]
    spec = speculate(db, blocks, _apply, max_width=2)
    assert spec.speculated == (0, 1)
    decision = spec.decide(4)
    assert not decision.speculative
    assert _contents(db) == _expected(blocks[4][1])
    with pytest.raises(LocalProtocolError):
        Speculation(db, blocks, _apply, max_width=0)
    assert db.snapshot_refs() == 0


def test_unknown_winner_and_failing_apply(db: ZapDB) -> None:
    def bad(txn: Txn, block: Block) -> None:
        txn.set(b"x", b"y")
        raise ValueError("block invalid")

    spec = speculate(db, [("a", _block(0))], bad)
    with pytest.raises(LocalProtocolError):
        spec.decide("zzz")
    with pytest.raises(ValueError):
        spec.decide("a")
    assert _contents(db) == {} and db.snapshot_refs() == 0


def test_head_moved_under_speculation_is_a_conflict(db: ZapDB) -> None:
    spec = speculate(db, [("a", _block(0))], _apply)
    with db.begin() as txn:
        txn.set(b"other", b"block")
        txn.commit()
    with pytest.raises(ConflictError):
        spec.decide("a")
    assert _contents(db) == {b"other": b"block"} and db.snapshot_refs() == 0


def test_unwind_contract_abandon(db: ZapDB) -> None:
    gate = threading.Event()

    def slow(txn: Txn, block: Block) -> int:
        gate.wait(5)
        return _apply(txn, block)  # a discarded branch raises StoreError here

    def observe(_: Any) -> Any:
        return (_contents(db), db.snapshot_refs())

    def running() -> tuple[Speculation[Block], Any]:
        want = observe(None)
        return speculate(db, [(i, _block(i)) for i in range(3)], slow), want

    def finished() -> tuple[Speculation[Block], Any]:
        want = observe(None)
        spec = speculate(db, [(i, _block(i)) for i in range(3)], _apply)
        while not all(spec.ready(i) for i in range(3)):
            threading.Event().wait(0.001)
        return spec, want

    def decided() -> tuple[Speculation[Block], Any]:
        spec = speculate(db, [(i, _block(i)) for i in range(3)], _apply)
        spec.decide(2)
        return spec, observe(None)

    def abandoned() -> tuple[Speculation[Block], Any]:
        want = observe(None)
        spec = speculate(db, [(i, _block(i)) for i in range(3)], _apply)
        spec.abandon()
        return spec, want

    try:
        check_unwind_contract(
            {"running": running, "finished": finished, "decided": decided, "abandoned": abandoned},
            Speculation.abandon,
            observe,
        )
    finally:
        gate.set()
    assert db.snapshot_refs() == 0


def test_discarded_branch_stops_a_running_apply(db: ZapDB) -> None:
    br = db.snapshot()
    br.set(b"a", b"1")
    br.discard()
    with pytest.raises(StoreError):
        br.set(b"b", b"2")
