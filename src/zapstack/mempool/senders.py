"""The mempool's entries and per-sender rules as pure functions (sans-IO, no locks).

:class:`~zapstack.mempool.pool.Mempool` owns the entries (:class:`Entry`: the
view pointer plus the integers decoded from it once) and the lock; this module
decides.  Each ``*_verdict`` returns ``None`` (the rule passes) or the
``(wire code, reason)`` to reject with; :func:`recheck_plan` lists the entries
a recheck drops.  See ``docs/formats/mempool.md`` for the rules' order.

* nonce range: ``floor <= nonce < floor + max_nonce_gap``;
* replacement: the new fee is at least ``old + max(1, ceil(old * bump / 100))``;
* per-sender cap: at most ``max_per_sender`` txs held;
* balance: the committed balance covers the sender's pooled costs plus this one
  (cost = amount + fee, what execution debits);
* recheck (after a commit), in nonce order: below the committed nonce -> drop;
  from the first tx the balance cannot cover (with those before it) -> drop it
  and every later one; behind a nonce gap for more than ``queued_rounds``
  rechecks -> drop;
* selection rank (:func:`select_rank`): a tx that has waited in the pool more
  than ``max_age`` seconds (``now - arrived > max_age``) is *aged* and ranks
  above every tx that is not, oldest ``(arrived, seq)`` first; the others rank
  by fee, highest first, earlier ``seq`` first among equal fees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from zapstack.errors import LocalProtocolError, WireCode
from zapstack.zap.views import TxView

__all__ = [
    "MAX_AGE_S",
    "Entry",
    "Pooled",
    "Rank",
    "SenderLimits",
    "Verdict",
    "balance_verdict",
    "nonce_verdict",
    "recheck_plan",
    "replacement_fee",
    "select_rank",
    "slot_verdict",
    "tx_cost",
]


def tx_cost(view: TxView) -> int:
    """What executing ``view`` debits its sender: amount (0 for a call) + fee."""
    return view.amount + view.fee


class Entry:
    """One pooled tx: the view (pointer) and the integers decoded from it once."""

    __slots__ = (
        "arrived",
        "cost",
        "fee",
        "key",
        "nonce",
        "pos",
        "queued",
        "sender",
        "seq",
        "size",
        "tx_id",
        "view",
    )

    def __init__(
        self, view: TxView, tx_id: bytes, sender: bytes, seq: int, arrived: float = 0.0
    ) -> None:
        self.view = view
        self.tx_id = tx_id
        self.sender = sender
        self.fee = view.fee
        self.nonce = view.nonce
        self.size = len(view)
        self.seq = seq
        self.arrived = arrived  # the pool's clock at admission (seconds)
        self.key = (self.fee, -seq)
        self.pos = -1
        self.cost = tx_cost(view)
        self.queued = 0  # rechecks spent behind a nonce gap


Verdict = tuple[WireCode, str] | None
"""``None``: the rule passes; else the code and reason to reject with."""

MAX_AGE_S = 1.0
"""Default age bound of a block selection (seconds a tx may wait before it goes first)."""

Rank = tuple[int, float, int]
"""A selection rank: the smallest goes first (see :func:`select_rank`)."""


def select_rank(e: Entry, now: float | None, max_age: float) -> Rank:
    """Where ``e`` stands in a block selection made at ``now`` (smaller goes first).

    Aged (``now - e.arrived > max_age``): ``(0, arrived, seq)``, oldest first;
    otherwise ``(1, -fee, seq)``, fee priority.  ``now`` ``None``: no aging.
    Unique per entry (``seq`` is), so the order is total.
    """
    if now is not None and now - e.arrived > max_age:
        return 0, e.arrived, e.seq
    return 1, -e.fee, e.seq


@dataclass(frozen=True, slots=True)
class SenderLimits:
    """Per-sender bounds of a pool."""

    max_per_sender: int = 128
    """Txs one sender may hold."""
    max_nonce_gap: int = 128
    """A nonce must be below the committed nonce plus this."""
    replace_bump_pct: int = 10
    """Minimum fee increase, in percent (at least 1 unit), to replace a tx."""
    queued_rounds: int = 16
    """Rechecks a tx may wait behind a nonce gap before it is dropped."""

    def __post_init__(self) -> None:
        if min(self.max_per_sender, self.max_nonce_gap) < 1:
            raise LocalProtocolError("max_per_sender and max_nonce_gap must be >= 1")
        if min(self.replace_bump_pct, self.queued_rounds) < 0:
            raise LocalProtocolError("replace_bump_pct and queued_rounds must be >= 0")


class Pooled(Protocol):
    """What the recheck reads and updates of a pooled entry."""

    nonce: int
    cost: int
    queued: int


P = TypeVar("P", bound=Pooled)


def nonce_verdict(nonce: int, floor: int, limits: SenderLimits) -> Verdict:
    """The nonce range rule (``floor`` = the committed account nonce)."""
    if nonce < floor:
        return WireCode.NONCE_TOO_LOW, f"nonce {nonce} below account nonce {floor}"
    if nonce >= floor + limits.max_nonce_gap:
        return (
            WireCode.BAD_NONCE,
            f"nonce {nonce} too far ahead of account nonce {floor} "
            f"(gap limit {limits.max_nonce_gap})",
        )
    return None


def replacement_fee(old_fee: int, bump_pct: int) -> int:
    """The lowest fee that may replace a tx paying ``old_fee``."""
    return old_fee + max(1, -(-old_fee * bump_pct // 100))


def slot_verdict(held: int, old_fee: int | None, fee: int, limits: SenderLimits) -> Verdict:
    """Replacement bump (``old_fee``: the tx at this nonce, if any) and the per-sender cap."""
    if old_fee is not None:
        need = replacement_fee(old_fee, limits.replace_bump_pct)
        if fee < need:
            return (
                WireCode.DUPLICATE,
                f"nonce taken by a tx paying {old_fee}; replacing needs fee >= {need}",
            )
        return None
    if held >= limits.max_per_sender:
        return WireCode.MEMPOOL_FULL, f"sender holds {held} txs (limit {limits.max_per_sender})"
    return None


def balance_verdict(have: int, pending: int, cost: int) -> Verdict:
    """The committed balance ``have`` covers ``pending`` pooled costs plus ``cost``."""
    if pending + cost > have:
        return (
            WireCode.INSUFFICIENT_BALANCE,
            f"balance {have} does not cover cost {cost} + pending {pending}",
        )
    return None


def recheck_plan(
    slots: Mapping[int, P], floor: int, budget: int | None, queued_rounds: int
) -> list[P]:
    """Entries of one sender a recheck drops; updates the others' ``queued`` counts.

    ``budget``: the committed balance (``None``: not checked).
    """
    gone: list[P] = []
    spent, expect = 0, floor
    order = sorted(slots)
    for i, nonce in enumerate(order):
        e = slots[nonce]
        if nonce < floor:
            gone.append(e)
            continue
        spent += e.cost
        if budget is not None and spent > budget:
            gone.extend(slots[n] for n in order[i:])
            break
        if nonce == expect:
            e.queued = 0
            expect += 1
        else:
            e.queued += 1
            if e.queued > queued_rounds:
                gone.append(e)
    return gone
