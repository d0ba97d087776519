"""Mempool: admission rules, capacity/eviction, nonce-ordered selection, removal, unwind.

The stateful test drives the pool and a brute-force model (sorted lists, no
heap) through random inserts, drops, removals, commits, clock ticks and
selections and checks they agree on every answer.  Selection is held equal to
:func:`reference_select`, a plain rewrite of docs/formats/mempool.md's
selection order (fee priority, aged txs first, per-sender nonce order).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
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
    assert pool.recheck([sender_id(0)]) == 2
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


@pytest.mark.parametrize(
    "bad",
    [
        {"max_txs": 0},
        {"min_fee": -1},
        {"max_per_sender": 0},
        {"max_nonce_gap": 0},
        {"replace_bump_pct": -1},
        {"queued_rounds": -1},
        {"max_age": -0.5},
        {"max_age": float("nan")},
    ],
)
def test_bad_config(bad: dict[str, float]) -> None:
    with pytest.raises(LocalProtocolError):
        Mempool(**bad)  # type: ignore[arg-type]


# -- per-sender rules (docs/formats/mempool.md rules 4-8, recheck) ---------------------
def test_nonce_too_far_ahead_is_refused() -> None:
    pool = Mempool(max_nonce_gap=4)
    pool.insert(tx_view(0, 3, 5))  # floor 0: nonces 0..3 allowed
    with pytest.raises(InvalidTx) as info:
        pool.insert(tx_view(0, 4, 5))
    assert info.value.code is WireCode.BAD_NONCE and len(pool) == 1


def test_replacement_needs_the_fee_bump() -> None:
    pool = Mempool(replace_bump_pct=10)
    old = pool.insert(tx_view(0, 0, 20)).tx_id
    with pytest.raises(InvalidTx) as info:
        pool.insert(tx_view(0, 0, 21))  # needs 20 + ceil(2.0) = 22
    assert info.value.code is WireCode.DUPLICATE and old in pool
    assert pool.insert(tx_view(0, 0, 22)).replaced == old


def test_per_sender_cap_counts_held_txs_but_not_a_replacement() -> None:
    pool = Mempool(max_per_sender=2)
    pool.insert(tx_view(0, 0, 5))
    pool.insert(tx_view(0, 1, 5))
    with pytest.raises(InvalidTx) as info:
        pool.insert(tx_view(0, 2, 5))
    assert info.value.code is WireCode.MEMPOOL_FULL
    assert pool.insert(tx_view(0, 1, 8)).replaced is not None  # replacing is allowed
    pool.insert(tx_view(1, 0, 5))  # other senders are not affected


def test_balance_must_cover_the_tx_and_the_senders_pending_txs() -> None:
    balances = {sender_id(0): 10}
    pool = Mempool(balance=lambda s: balances.get(s, 0))
    pool.insert(tx_view(0, 0, 4))  # transfer: amount 1 + fee 4 = 5
    pool.insert(tx_view(0, 1, 3, 0))  # call: fee 3 (no amount) -> 8 pending
    with pytest.raises(InvalidTx) as info:
        pool.insert(tx_view(0, 2, 2))  # 8 + 3 > 10
    assert info.value.code is WireCode.INSUFFICIENT_BALANCE
    with pytest.raises(InvalidTx) as info:
        pool.insert(tx_view(1, 0, 2))  # an unfunded sender pays nothing: refused
    assert info.value.code is WireCode.INSUFFICIENT_BALANCE
    # a replacement is judged without the tx it replaces: 5 + 5 <= 10
    assert pool.insert(tx_view(0, 1, 5, 0)).replaced is not None
    assert len(pool) == 2


def test_account_hook_reads_the_state_once_per_admission_with_the_same_verdicts() -> None:
    state = {sender_id(0): (3, 12), sender_id(1): (0, 0), sender_id(2): (7, 100)}
    reads: list[bytes] = []  # state: (committed nonce, balance)

    def account(s: bytes) -> tuple[int, int]:
        reads.append(s)
        return state.get(s, (0, 0))

    one = Mempool(account=account)
    two = Mempool(nonce_floor=lambda s: state[s][0], balance=lambda s: state[s][1])
    cases = [(0, 3, 4), (0, 2, 4), (0, 4, 3), (0, 5, 3), (1, 0, 2), (0, 200, 1)]
    for sender, nonce, fee in cases:
        v = tx_view(sender, nonce, fee)
        verdicts = []
        for pool in (one, two):
            try:
                verdicts.append(pool.insert(v))
            except InvalidTx as exc:
                verdicts.append(exc.code)
        assert verdicts[0] == verdicts[1]
    assert len(reads) == len(cases)  # one read per insert, not one per rule
    assert one.insert(tx_view(0, 5, 1)) == Admitted(tx_view(0, 5, 1).tx_id, (), None, 3)
    assert one.precheck(tx_view(2, 7, 1)) == 7  # precheck reports the floor it used
    assert one.nonce_floor(sender_id(0)) == 3


def test_eviction_takes_a_senders_higher_nonces_with_its_low_nonce() -> None:
    pool = Mempool(max_txs=3)
    low, mid = tx_view(0, 0, 2), tx_view(0, 1, 9)  # nonce 1 pays more, but needs nonce 0
    other = tx_view(1, 0, 5)
    for v in (low, mid, other):
        pool.insert(v)
    got = pool.insert(tx_view(2, 0, 3))
    assert got.evicted == (low.tx_id, mid.tx_id)  # the chain goes together
    assert pool.sender_nonces(sender_id(0)) == [] and len(pool) == 2
    pool.check()


def test_a_full_pool_never_evicts_the_new_txs_own_lower_nonce() -> None:
    pool = Mempool(max_txs=2)
    pool.insert(tx_view(0, 0, 2))
    pool.insert(tx_view(1, 0, 5))
    with pytest.raises(InvalidTx) as info:
        pool.insert(tx_view(0, 1, 9))  # would strand itself
    assert info.value.code is WireCode.MEMPOOL_FULL and len(pool) == 2


def test_recheck_drops_what_the_committed_state_can_no_longer_pay() -> None:
    balances = {sender_id(0): 30}
    pool = Mempool(balance=lambda s: balances.get(s, 0))
    ids = [pool.insert(tx_view(0, n, 4)).tx_id for n in range(4)]  # 5 each: 20
    balances[sender_id(0)] = 12  # spent elsewhere: only two still fit
    assert pool.recheck() == 2
    assert [i in pool for i in ids] == [True, True, False, False]
    assert pool.stats.pruned == 2


def test_recheck_drops_txs_stuck_behind_a_gap_after_queued_rounds() -> None:
    pool = Mempool(queued_rounds=2)
    ahead = pool.insert(tx_view(0, 2, 5)).tx_id  # nonce 0 and 1 never came
    ready = pool.insert(tx_view(1, 0, 5)).tx_id
    assert pool.recheck() == 0 and pool.recheck() == 0
    assert pool.recheck() == 1  # third recheck behind the gap
    assert ahead not in pool and ready in pool


def test_a_failed_tx_takes_its_senders_later_nonces_with_it() -> None:
    pool = Mempool()
    ids = [pool.insert(tx_view(0, n, 5)).tx_id for n in range(4)]
    keep = pool.insert(tx_view(1, 0, 5)).tx_id
    assert pool.drop_with_successors(ids[1]) == 3
    assert pool.drop_with_successors(ids[1]) == 0  # idempotent
    assert ids[0] in pool and keep in pool and len(pool) == 2


def test_zero_funds_flood_is_refused_by_lookups_alone() -> None:
    """A zero-funds flood is refused by lookups: no verify, nothing pooled."""
    looked: list[bytes] = []

    def balance(s: bytes) -> int:
        looked.append(s)
        return 0

    pool = Mempool(balance=balance)
    for s in range(20):
        with pytest.raises(InvalidTx):
            pool.insert(tx_view(s, 0, 9))
    assert len(pool) == 0 and len(looked) == 20


def test_precheck_applies_rules_1_to_7_and_changes_nothing() -> None:
    balances = {sender_id(0): 6}
    pool = Mempool(balance=lambda s: balances.get(s, 0), max_per_sender=2)
    held = pool.insert(tx_view(0, 0, 4))  # cost 5
    cases = [
        (tx_view(0, 0, 4), WireCode.DUPLICATE),
        (tx_view(0, 1, 0), WireCode.FEE_TOO_LOW),
        (tx_view(0, 1, 2), WireCode.INSUFFICIENT_BALANCE),  # 5 + 3 > 6
        (tx_view(1, 0, 2), WireCode.INSUFFICIENT_BALANCE),  # unfunded
    ]
    for view, code in cases:
        with pytest.raises(InvalidTx) as info:
            pool.precheck(view)
        assert info.value.code is code
    balances[sender_id(0)] = 100
    pool.precheck(tx_view(0, 1, 2))  # passes: nothing is admitted
    assert len(pool) == 1 and pool.get(held.tx_id) is not None
    assert pool.stats.admitted == 1


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


@dataclass
class Held:
    """What the reference selection reads of one pooled tx."""

    view: TxView
    sender: bytes
    nonce: int
    fee: int
    size: int
    order: int  # admission order (the pool's ``seq`` up to a shift)
    arrived: float


def reference_select(
    held: Iterable[Held],
    floors: dict[bytes, int],
    n: int,
    max_bytes: int | None,
    now: float | None,
    max_age: float,
) -> list[TxView]:
    """docs/formats/mempool.md §select, written out plainly (no heap, no ranks).

    Candidates are each sender's next nonce.  If any candidate has waited more
    than ``max_age`` (``now`` given), the one that arrived first goes; else the
    highest fee, the earlier admission among equal fees.  A candidate that does
    not fit the byte budget ends its sender's turn.
    """
    pool = list(held)
    nxt = {h.sender: floors.get(h.sender, 0) for h in pool}
    done: set[bytes] = set()
    out: list[TxView] = []
    used = 0
    while len(out) < n:
        cands = [h for h in pool if h.sender not in done and h.nonce == nxt[h.sender]]
        if not cands:
            break
        aged = [h for h in cands if now is not None and now - h.arrived > max_age]
        if aged:
            best = min(aged, key=lambda h: (h.arrived, h.order))
        else:
            best = max(cands, key=lambda h: (h.fee, -h.order))
        if max_bytes is not None and used + best.size > max_bytes:
            done.add(best.sender)
            continue
        out.append(best.view)
        used += best.size
        nxt[best.sender] += 1
    return out


class Clock:
    """A settable clock for the pool."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_an_aged_tx_goes_before_higher_fees() -> None:
    clock = Clock()
    pool = Mempool(clock=clock, max_age=1.0)
    low = tx_view(0, 0, 1)
    pool.insert(low)  # arrives at 0.0
    clock.t = 0.5
    high, higher = tx_view(1, 0, 9), tx_view(2, 0, 20)
    pool.insert(high)
    pool.insert(higher)
    clock.t = 1.0  # ``low`` has waited exactly the bound: not aged yet
    assert pool.select(10) == [higher, high, low]
    clock.t = 1.25  # now it has waited longer
    assert pool.select(10) == [low, higher, high]
    assert pool.select(1) == [low]
    clock.t = 1.75  # all three aged: oldest first, fees no longer matter
    assert pool.select(10) == [low, high, higher]


def test_an_aged_tx_still_waits_for_its_senders_lower_nonce() -> None:
    clock = Clock()
    pool = Mempool(clock=clock, max_age=1.0)
    late_successor = tx_view(0, 1, 1)
    pool.insert(late_successor)  # nonce 1 first (a gap) at 0.0
    clock.t = 2.0
    head, other = tx_view(0, 0, 2, 1000), tx_view(1, 0, 9)
    pool.insert(head)
    pool.insert(other)
    clock.t = 2.5  # only nonce 1 is aged, but it cannot pass nonce 0
    assert pool.select(10) == [other, head, late_successor]
    # nonce 0 does not fit: nonce 1 fits but may not go without it
    assert pool.select(10, max_bytes=len(other) + len(late_successor)) == [other]


def test_without_a_clock_selection_is_fee_priority() -> None:
    pool = Mempool(max_age=0.0)
    views = [tx_view(s, 0, fee) for s, fee in enumerate((3, 7, 5))]
    for v in views:
        pool.insert(v)
    assert pool.select(10) == [views[1], views[2], views[0]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    txs=st.lists(
        st.tuples(
            st.integers(0, 3),  # sender
            st.integers(0, 4),  # nonce
            st.sampled_from((1, 2, 3, 5, 8, 13)),  # fee
            st.sampled_from((-1, 60, 300)),  # call data length (-1: a transfer)
            st.sampled_from((0.0, 0.25, 0.5, 1.0)),  # clock step before it arrives
        ),
        max_size=24,
    ),
    floors=st.lists(st.integers(0, 2), min_size=4, max_size=4),
    wait=st.sampled_from((0.0, 0.5, 1.0, 1.5, 2.0, 4.0)),
    max_age=st.sampled_from((0.0, 0.5, 1.0, 2.0)),
    n=st.integers(0, 30),
    max_bytes=st.one_of(st.none(), st.integers(0, 3000)),
)
def test_select_equals_the_reference(
    txs: list[tuple[int, int, int, int, float]],
    floors: list[int],
    wait: float,
    max_age: float,
    n: int,
    max_bytes: int | None,
) -> None:
    clock = Clock()
    pool = Mempool(clock=clock, max_age=max_age, max_per_sender=8, replace_bump_pct=50)
    admitted: list[Held] = []
    for s, nonce, fee, data_len, step in txs:
        clock.t += step
        v = tx_view(s, nonce, fee, data_len)
        try:
            pool.insert(v)
        except InvalidTx:
            continue
        admitted.append(Held(v, v.sender, nonce, fee, len(v), len(admitted), clock.t))
    clock.t += wait
    # committed nonces move after admission (gaps, txs below the floor), no recheck yet
    committed = {sender_id(s): f for s, f in enumerate(floors)}
    pool.nonce_floor = lambda sender: committed.get(sender, 0)
    held = [h for h in admitted if pool.get(h.view.tx_id) is h.view]  # replaced ones left
    want = reference_select(held, committed, n, max_bytes, clock.t, max_age)
    got = pool.select(n, max_bytes)
    assert [v.tx_id for v in got] == [v.tx_id for v in want]
    assert all(pool.get(v.tx_id) is v for v in got)


def test_select_after_an_uncommitted_block_starts_past_its_txs() -> None:
    pool = Mempool()
    a = [tx_view(0, n, 10) for n in range(4)]
    b = [tx_view(1, n, 20) for n in range(2)]
    for v in (*a, *b):
        pool.insert(v)
    first = pool.select(3)
    assert first == [b[0], b[1], a[0]]
    # the next block follows ``first``: each sender starts after its last nonce there
    floors = {v.sender: v.nonce + 1 for v in first}
    assert pool.select(10, floors=floors) == a[1:]
    assert pool.select(10, floors={a[0].sender: 0}) == [b[0], b[1], *a]  # never below


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
NONCES = 6
FEES = (1, 2, 3, 5, 8)
SIZES = (-1, 100, 400)
PER_SENDER, GAP, BUMP, QUEUED = 3, 4, 50, 2
AGE = 2.0


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
    cost: int
    arrived: float
    queued: int = 0


class PoolMachine(RuleBasedStateMachine):
    """The pool against a model written from docs/formats/mempool.md's rule list."""

    def __init__(self) -> None:
        super().__init__()
        self.floors: dict[bytes, int] = {}
        self.balances: dict[bytes, int] = {}
        self.max_txs = 6
        self.max_bytes = 6 * 300
        self.clock = Clock()
        self.pool = Mempool(
            clock=self.clock,
            max_age=AGE,
            max_txs=self.max_txs,
            max_bytes=self.max_bytes,
            min_fee=2,
            nonce_floor=lambda s: self.floors.get(s, 0),
            balance=lambda s: self.balances.get(s, 40),
            max_per_sender=PER_SENDER,
            max_nonce_gap=GAP,
            replace_bump_pct=BUMP,
            queued_rounds=QUEUED,
        )
        self.model: dict[bytes, M] = {}
        self.seq = 0

    # the model: plain lists, sorted on demand
    def model_insert(
        self, v: TxView, cost: int
    ) -> tuple[WireCode | None, tuple[bytes, ...], bytes | None]:
        if v.tx_id in self.model:
            return WireCode.DUPLICATE, (), None
        if v.fee < 2:
            return WireCode.FEE_TOO_LOW, (), None
        floor = self.floors.get(v.sender, 0)
        if v.nonce < floor:
            return WireCode.NONCE_TOO_LOW, (), None
        if v.nonce >= floor + GAP:
            return WireCode.BAD_NONCE, (), None
        mine = [m for m in self.model.values() if m.sender == v.sender]
        old = next((m for m in mine if m.nonce == v.nonce), None)
        if old is not None:
            if v.fee < old.fee + max(1, math.ceil(old.fee * BUMP / 100)):
                return WireCode.DUPLICATE, (), None
        elif len(mine) >= PER_SENDER:
            return WireCode.MEMPOOL_FULL, (), None
        if sum(m.cost for m in mine if m is not old) + cost > self.balances.get(v.sender, 40):
            return WireCode.INSUFFICIENT_BALANCE, (), None
        rest = [m for m in self.model.values() if m is not old]
        victims: list[M] = []
        while len(rest) + 1 > self.max_txs or sum(m.size for m in rest) + len(v) > self.max_bytes:
            low = min(rest, key=lambda m: (m.fee, -m.seq), default=None)
            if low is None or low.fee >= v.fee or (low.sender == v.sender and low.nonce < v.nonce):
                return WireCode.MEMPOOL_FULL, (), None
            chain = sorted(
                (m for m in rest if m.sender == low.sender and m.nonce >= low.nonce),
                key=lambda m: m.nonce,
            )
            victims += chain
            rest = [m for m in rest if m not in chain]
        for m in [*victims, *([old] if old else [])]:
            del self.model[m.tx_id]
        self.seq += 1
        self.model[v.tx_id] = M(
            v.tx_id, v.sender, v.nonce, v.fee, len(v), self.seq, v, cost, self.clock.t
        )
        return None, tuple(m.tx_id for m in victims), old.tx_id if old else None

    def model_recheck(self, sender: bytes) -> list[M]:
        floor, budget = self.floors.get(sender, 0), self.balances.get(sender, 40)
        mine = sorted((m for m in self.model.values() if m.sender == sender), key=lambda m: m.nonce)
        gone: list[M] = []
        spent, expect = 0, floor
        for i, m in enumerate(mine):
            if m.nonce < floor:
                gone.append(m)
                continue
            spent += m.cost
            if spent > budget:
                gone += mine[i:]
                break
            if m.nonce == expect:
                m.queued, expect = 0, expect + 1
            else:
                m.queued += 1
                if m.queued > QUEUED:
                    gone.append(m)
        return gone

    def model_select(
        self, n: int, max_bytes: int | None, after: dict[bytes, int] | None = None
    ) -> list[TxView]:
        raised = after or {}
        floors = {
            m.sender: max(self.floors.get(m.sender, 0), raised.get(m.sender, 0))
            for m in self.model.values()
        }
        held = (
            Held(m.view, m.sender, m.nonce, m.fee, m.size, m.seq, m.arrived)
            for m in self.model.values()
        )
        return reference_select(held, floors, n, max_bytes, self.clock.t, AGE)

    @rule(step=st.sampled_from((0.0, 0.5, 1.0, 2.5)))
    def tick(self, step: float) -> None:
        self.clock.t += step

    @rule(
        s=st.integers(0, SENDERS - 1),
        nonce=st.integers(0, NONCES - 1),
        fee=st.sampled_from(FEES),
        size=st.sampled_from(SIZES),
    )
    def insert(self, s: int, nonce: int, fee: int, size: int) -> None:
        v = tx_view(s, nonce, fee, size)
        cost = fee + (1 if size < 0 else 0)  # conftest: transfers move 1, calls 0
        want_code, want_evicted, want_replaced = self.model_insert(v, cost)
        try:
            got = self.pool.insert(v)
        except InvalidTx as exc:
            assert exc.code is want_code
            return
        assert want_code is None
        floor = self.floors.get(v.sender, 0)
        assert got == Admitted(v.tx_id, want_evicted, want_replaced, floor)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        tx_id = data.draw(st.sampled_from(sorted(self.model)))
        assert self.pool.drop(tx_id) is True
        assert self.pool.drop(tx_id) is False
        del self.model[tx_id]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def drop_failed(self, data: st.DataObject) -> None:
        m = self.model[data.draw(st.sampled_from(sorted(self.model)))]
        chain = [x for x in self.model.values() if x.sender == m.sender and x.nonce >= m.nonce]
        assert self.pool.drop_with_successors(m.tx_id) == len(chain)
        assert self.pool.drop_with_successors(m.tx_id) == 0
        for x in chain:
            del self.model[x.tx_id]

    @rule(picks=st.lists(st.integers(0, 50), max_size=4))
    def remove_selected(self, picks: list[int]) -> None:
        chosen = self.pool.select(3)
        ids = [v.tx_id for v in chosen] + [bytes([p]) * 32 for p in picks]  # absent ids too
        assert self.pool.remove(ids) == len(chosen)
        for v in chosen:
            del self.model[v.tx_id]

    @rule(
        s=st.integers(0, SENDERS - 1),
        step=st.integers(0, 2),
        spend=st.integers(0, 15),
        everyone=st.booleans(),
    )
    def commit(self, s: int, step: int, spend: int, everyone: bool) -> None:
        """A block committed: sender ``s``'s nonce moved by ``step``, balance by ``-spend``."""
        sender = sender_id(s)
        self.floors[sender] = self.floors.get(sender, 0) + step
        self.balances[sender] = max(0, self.balances.get(sender, 40) - spend)
        targets = {m.sender for m in self.model.values()} if everyone else {sender}
        gone = [m for t in sorted(targets) for m in self.model_recheck(t)]
        assert self.pool.recheck(None if everyone else [sender]) == len(gone)
        for m in gone:
            del self.model[m.tx_id]

    @rule(
        n=st.integers(0, 8),
        after=st.dictionaries(st.integers(0, SENDERS - 1), st.integers(0, NONCES)),
    )
    def select_after(self, n: int, after: dict[int, int]) -> None:
        """Floors raised per sender (a block on an uncommitted parent): lower nonces skipped."""
        floors = {sender_id(s): nonce for s, nonce in after.items()}
        got = self.pool.select(n, None, floors)
        assert [v.tx_id for v in got] == [v.tx_id for v in self.model_select(n, None, floors)]
        for v in got:
            assert v.nonce >= floors.get(v.sender, 0)

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
        for sender in {m.sender for m in self.model.values()}:  # never a low nonce evicted alone
            assert self.pool.sender_nonces(sender) == sorted(
                m.nonce for m in self.model.values() if m.sender == sender
            )


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
