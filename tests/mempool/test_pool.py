"""Mempool: admission rules, capacity/eviction, nonce-ordered selection, removal, unwind.

The stateful test drives the pool and a brute-force model (sorted lists, no
heap) through random inserts, drops, removals, commits and selections and
checks they agree on every answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from zapstack.errors import InvalidTx, LocalProtocolError, Stage, WireCode
from zapstack.mempool import Admitted, Mempool
from zapstack.testing.unwind import check_unwind_contract
from zapstack.zap import TxView

from .conftest import sender_id, tx_bytes, tx_view


def codes_of(pool: Mempool) -> dict[WireCode, int]:
    return {code: n for (stage, code), n in pool.stats.rejected.items() if stage is Stage.MEMPOOL}


# -- admission rules -------------------------------------------------------------
def test_insert_holds_the_view_not_a_copy() -> None:
    raw = tx_bytes(0, 0, 5)
    view = tx_view(0, 0, 5)
    pool = Mempool()
    got = pool.insert(view)
    assert got == Admitted(view.tx_id, (), None)
    held = pool.get(view.tx_id)
    assert held is view
    assert held.buffer.obj is view.buffer.obj  # the one received buffer
    assert bytes(held.buffer) == raw
    assert pool.select(10) == [view] and pool.select(10)[0] is view


@pytest.mark.parametrize(
    ("setup", "tx", "code"),
    [
        ([(0, 0, 5)], (0, 0, 5), WireCode.DUPLICATE),
        ([], (0, 0, 0), WireCode.FEE_TOO_LOW),
        ([(0, 0, 5)], (0, 0, 4), WireCode.DUPLICATE),  # same nonce slot, lower fee
        ([(0, 0, 5)], (0, 0, 5, 10), WireCode.DUPLICATE),  # same slot, equal fee
    ],
)
def test_rejections(setup: list[tuple[int, ...]], tx: tuple[int, ...], code: WireCode) -> None:
    pool = Mempool(min_fee=1)
    for t in setup:
        pool.insert(tx_view(*t))
    before = (len(pool), pool.bytes_used)
    with pytest.raises(InvalidTx) as info:
        pool.insert(tx_view(*tx))
    assert info.value.code is code
    assert (len(pool), pool.bytes_used) == before
    assert codes_of(pool) == {code: 1}


def test_nonce_below_committed_is_rejected_and_pruned() -> None:
    floors = {sender_id(0): 0}
    pool = Mempool(nonce_floor=lambda s: floors.get(s, 0))
    ids = [pool.insert(tx_view(0, n, 3)).tx_id for n in range(4)]
    floors[sender_id(0)] = 2  # a block committed nonces 0 and 1
    with pytest.raises(InvalidTx) as info:
        pool.insert(tx_view(0, 1, 9))
    assert info.value.code is WireCode.NONCE_TOO_LOW
    assert [v.tx_id for v in pool.select(10)] == ids[2:]  # stale ones never selected
    assert pool.prune([sender_id(0)]) == 2
    assert pool.sender_nonces(sender_id(0)) == [2, 3]
    assert pool.stats.pruned == 2
    pool.check()


def test_replace_by_fee() -> None:
    pool = Mempool()
    old = pool.insert(tx_view(0, 0, 5)).tx_id
    got = pool.insert(tx_view(0, 0, 6))
    assert got.replaced == old and old not in pool and len(pool) == 1
    assert pool.stats.replaced == 1


def test_full_pool_evicts_lowest_fee_or_rejects() -> None:
    pool = Mempool(max_txs=3)
    ids = {f: pool.insert(tx_view(f, 0, f)).tx_id for f in (2, 3, 4)}
    with pytest.raises(InvalidTx) as info:
        pool.insert(tx_view(9, 0, 2))  # fee <= lowest: MEMPOOL_FULL
    assert info.value.code is WireCode.MEMPOOL_FULL
    got = pool.insert(tx_view(9, 0, 3))
    assert got.evicted == (ids[2],)
    assert ids[2] not in pool and len(pool) == 3
    assert pool.lowest_fee() == 3
    pool.check()


def test_byte_capacity_evicts_several_or_restores() -> None:
    small = len(tx_view(0, 0, 1))  # a transfer
    overhead = len(tx_view(5, 0, 1, 0))  # a call with empty data
    pool = Mempool(max_bytes=3 * small)
    for s, fee in ((0, 1), (1, 2), (2, 8)):
        pool.insert(tx_view(s, 0, fee))
    with pytest.raises(InvalidTx) as info:  # 3 small ones would have to go, fee 8 too
        pool.insert(tx_view(5, 0, 8, 3 * small - overhead))
    assert info.value.code is WireCode.MEMPOOL_FULL
    assert len(pool) == 3 and pool.bytes_used == 3 * small  # restored exactly
    pool.check()
    got = pool.insert(tx_view(5, 0, 9, 2 * small - overhead))  # two must go
    assert len(got.evicted) == 2
    assert [pool.get(t) for t in got.evicted] == [None, None]
    assert pool.lowest_fee() == 8
    pool.check()


def test_bad_config() -> None:
    with pytest.raises(LocalProtocolError):
        Mempool(max_txs=0)


# -- selection ---------------------------------------------------------------------
def test_select_orders_by_fee_and_keeps_nonce_order() -> None:
    pool = Mempool()
    # sender 0: nonce 0 pays 1, nonce 1 pays 100; sender 1: nonce 0 pays 50
    a0, a1, b0 = tx_view(0, 0, 1), tx_view(0, 1, 100), tx_view(1, 0, 50)
    for v in (a1, b0, a0):
        pool.insert(v)
    assert pool.select(10) == [b0, a0, a1]  # a1 never before a0
    assert pool.select(2) == [b0, a0]


def test_select_holds_back_gaps_and_respects_bytes() -> None:
    pool = Mempool()
    gap = tx_view(0, 2, 99)  # nonce 0 and 1 missing
    pool.insert(gap)
    big, after = tx_view(1, 0, 50, 1000), tx_view(1, 1, 60)
    small = tx_view(2, 0, 10)
    for v in (big, after, small):
        pool.insert(v)
    assert pool.select(10) == [big, after, small]
    # ``big`` does not fit: skipped, and its successor with it
    assert pool.select(10, max_bytes=len(small) + len(after)) == [small]


def test_remove_after_commit_is_idempotent() -> None:
    pool = Mempool()
    views = [tx_view(s, 0, s + 1) for s in range(5)]
    for v in views:
        pool.insert(v)
    chosen = pool.select(3)
    assert pool.remove(v.tx_id for v in chosen) == 3
    assert pool.remove(v.tx_id for v in chosen) == 0
    assert len(pool) == 2 and pool.stats.removed == 3
    pool.check()


# -- unwind contract ---------------------------------------------------------------
def test_drop_meets_the_unwind_contract() -> None:
    target = tx_view(0, 0, 5)
    others = [tx_view(s, 0, 3) for s in (1, 2)]

    def observe(pool: Mempool) -> tuple[object, ...]:
        return (len(pool), pool.bytes_used, target.tx_id in pool, tuple(pool.select(99)))

    def build(with_target: bool, extra: bool = True, dropped: bool = False):  # type: ignore[no-untyped-def]
        def make() -> tuple[Mempool, object]:
            pool = Mempool()
            for v in others if extra else ():
                pool.insert(v)
            clean = observe(pool)
            if with_target:
                pool.insert(target)
                if dropped:
                    pool.drop(target.tx_id)
            return pool, clean

        return make

    n = check_unwind_contract(
        {
            "holding the tx": build(True),
            "only the tx": build(True, extra=False),
            "never held it": build(False),
            "empty": build(False, extra=False),
            "already dropped": build(True, dropped=True),
        },
        unwind=lambda pool: pool.drop(target.tx_id),
        observe=observe,
        racers=4,
    )
    assert n == 5


# -- stateful model check ------------------------------------------------------------
SENDERS = 3
NONCES = 4
FEES = (1, 2, 3, 5)
SIZES = (-1, 100, 400)


@dataclass
class M:
    """Model entry."""

    tx_id: bytes
    sender: bytes
    nonce: int
    fee: int
    size: int
    seq: int
    view: TxView


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.floors: dict[bytes, int] = {}
        self.max_txs = 6
        self.max_bytes = 6 * 300
        self.pool = Mempool(
            max_txs=self.max_txs,
            max_bytes=self.max_bytes,
            min_fee=2,
            nonce_floor=lambda s: self.floors.get(s, 0),
        )
        self.model: dict[bytes, M] = {}
        self.seq = 0

    # the model: plain lists, sorted on demand
    def model_insert(self, v: TxView) -> tuple[WireCode | None, tuple[bytes, ...], bytes | None]:
        if v.tx_id in self.model:
            return WireCode.DUPLICATE, (), None
        if v.fee < 2:
            return WireCode.FEE_TOO_LOW, (), None
        if v.nonce < self.floors.get(v.sender, 0):
            return WireCode.NONCE_TOO_LOW, (), None
        old = next(
            (m for m in self.model.values() if (m.sender, m.nonce) == (v.sender, v.nonce)), None
        )
        if old is not None and v.fee <= old.fee:
            return WireCode.DUPLICATE, (), None
        rest = [m for m in self.model.values() if m is not old]
        rest.sort(key=lambda m: (m.fee, -m.seq))
        victims: list[M] = []
        while len(rest) + 1 > self.max_txs or sum(m.size for m in rest) + len(v) > self.max_bytes:
            if not rest or rest[0].fee >= v.fee:
                return WireCode.MEMPOOL_FULL, (), None
            victims.append(rest.pop(0))
        for m in [*victims, *([old] if old else [])]:
            del self.model[m.tx_id]
        self.seq += 1
        self.model[v.tx_id] = M(v.tx_id, v.sender, v.nonce, v.fee, len(v), self.seq, v)
        return None, tuple(m.tx_id for m in victims), old.tx_id if old else None

    def model_select(self, n: int, max_bytes: int | None) -> list[TxView]:
        nxt = {m.sender: self.floors.get(m.sender, 0) for m in self.model.values()}
        blocked: set[bytes] = set()
        out: list[TxView] = []
        used = 0
        while len(out) < n:
            cands = [
                m
                for m in self.model.values()
                if m.sender not in blocked and m.nonce == nxt[m.sender]
            ]
            if not cands:
                break
            best = max(cands, key=lambda m: (m.fee, -m.seq))
            if max_bytes is not None and used + best.size > max_bytes:
                blocked.add(best.sender)
                continue
            out.append(best.view)
            used += best.size
            nxt[best.sender] += 1
        return out

    @rule(
        s=st.integers(0, SENDERS - 1),
        nonce=st.integers(0, NONCES - 1),
        fee=st.sampled_from(FEES),
        size=st.sampled_from(SIZES),
    )
    def insert(self, s: int, nonce: int, fee: int, size: int) -> None:
        v = tx_view(s, nonce, fee, size)
        want_code, want_evicted, want_replaced = self.model_insert(v)
        try:
            got = self.pool.insert(v)
        except InvalidTx as exc:
            assert exc.code is want_code
            return
        assert want_code is None
        assert got == Admitted(v.tx_id, want_evicted, want_replaced)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        tx_id = data.draw(st.sampled_from(sorted(self.model)))
        assert self.pool.drop(tx_id) is True
        assert self.pool.drop(tx_id) is False
        del self.model[tx_id]

    @rule(picks=st.lists(st.integers(0, 50), max_size=4))
    def remove_selected(self, picks: list[int]) -> None:
        chosen = self.pool.select(3)
        ids = [v.tx_id for v in chosen] + [bytes([p]) * 32 for p in picks]  # absent ids too
        assert self.pool.remove(ids) == len(chosen)
        for v in chosen:
            del self.model[v.tx_id]

    @rule(s=st.integers(0, SENDERS - 1), step=st.integers(1, 2), everyone=st.booleans())
    def commit_nonces(self, s: int, step: int, everyone: bool) -> None:
        sender = sender_id(s)
        self.floors[sender] = self.floors.get(sender, 0) + step
        stale = [m for m in self.model.values() if m.nonce < self.floors.get(m.sender, 0)]
        got = self.pool.prune(None if everyone else [sender])
        if not everyone:
            stale = [m for m in stale if m.sender == sender]
        assert got == len(stale)
        for m in stale:
            del self.model[m.tx_id]

    @rule(n=st.integers(0, 8), max_bytes=st.one_of(st.none(), st.integers(0, 1200)))
    def select(self, n: int, max_bytes: int | None) -> None:
        got = self.pool.select(n, max_bytes)
        assert [v.tx_id for v in got] == [v.tx_id for v in self.model_select(n, max_bytes)]
        assert all(self.pool.get(v.tx_id) is v for v in got)  # pointers, not copies
        seen: dict[bytes, int] = {}
        for v in got:  # per-sender nonces consecutive from the committed nonce
            want = seen.get(v.sender, self.floors.get(v.sender, 0))
            assert v.nonce == want
            seen[v.sender] = want + 1

    @invariant()
    def agree(self) -> None:
        self.pool.check()
        assert set(self.model) == {t for t in self.model if t in self.pool}
        assert len(self.pool) == len(self.model)
        assert self.pool.bytes_used == sum(m.size for m in self.model.values())
        low = min(self.model.values(), key=lambda m: (m.fee, -m.seq), default=None)
        assert self.pool.lowest_fee() == (low.fee if low else None)


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
