"""The mempool: stage 5 of the tx receive pipeline (LP-0202 §1, §"Atomic unwind").

Theory of operation
-------------------
The pool holds *pointers*: each entry keeps the :class:`~zapstack.zap.TxView`
that ingress handed out (a read-only ``memoryview`` of the one received
buffer) plus the few integers decoded from it once (fee, nonce, size, arrival
sequence) and the sender id.  No payload byte is copied on insert, select or
removal; dropping an entry drops the last reference (the GC reclaims the buffer).

Three indexes over the same entries:

* ``_by_id``      tx id -> entry (duplicate check, O(1) lookup);
* ``_by_sender``  sender -> {nonce -> entry} (nonce order, replacement);
* ``_ranked``     an :class:`~zapstack.mempool.heap.IndexedHeap` keyed by ``(fee, -seq)``: the
  root is the *lowest*-priority tx (the eviction victim); equal fees: earlier ranks higher.

Block selection (:meth:`Mempool.select`) adds an age bound: a tx that waited over ``max_age``
seconds (by the injected ``clock``; ``None``: no aging) goes before every tx that has not,
oldest first, in nonce order (:func:`~zapstack.mempool.senders.select_rank`): no starvation.

Admission (:meth:`Mempool.insert`) applies these rules in order; the first that
fails raises :class:`~zapstack.errors.InvalidTx` with the listed code and
leaves the pool unchanged.  Rules 1-7 are lookups (no signature, no crypto):
a flood of txs that cannot pay costs the node dictionary reads.

====  =========================================================  ==============
rule  condition                                                  code
====  =========================================================  ==============
1     the tx id is already in the pool                           DUPLICATE
2     ``fee < min_fee`` (the configurable floor)                 FEE_TOO_LOW
3     ``nonce < nonce_floor(sender)`` (committed account nonce)  NONCE_TOO_LOW
4     ``nonce >= nonce_floor(sender) + max_nonce_gap``           BAD_NONCE
5     the sender already has a tx at this nonce and the new fee  DUPLICATE
      is below ``old + max(1, ceil(old * replace_bump_pct/100))``
      (otherwise the old one is replaced)
6     the sender already holds ``max_per_sender`` txs (not       MEMPOOL_FULL
      counting the one replaced)
7     ``balance`` is given and the sender's committed balance    INSUFFICIENT_
      is below the cost of this tx plus its other pooled txs     BALANCE
      (cost = amount + fee: what execution debits)
8     the pool is full (``max_txs`` or ``max_bytes``) and the    MEMPOOL_FULL
      lowest-priority txs that would have to go pay a fee
      ``>=`` the new tx's fee, or one of them is this sender's
      lower nonce
====  =========================================================  ==============

If rule 8 passes with evictions, the lowest-priority txs are evicted (their
ids are reported in :class:`Admitted`), each *with its sender's higher
nonces*: evicting a sender's low nonce never keeps the ones it would strand.

:meth:`Mempool.precheck` applies rules 1-7 without admitting (before a
signature check).  After every commit the node calls :meth:`Mempool.recheck` (CometBFT's recheck,
geth's reset): for each sender, in nonce order, it drops txs below the new
committed nonce, the first tx the committed balance can no longer cover
together with every later one, and txs that have waited behind a nonce gap for
more than ``queued_rounds`` rechecks.  :meth:`Mempool.drop_with_successors`
drops a tx that failed inside a block together with the sender's later nonces.

Costs (N pooled, S senders, k selected): ``insert`` O(log N) (+O(log N) per
eviction, +O(sender's txs) for rule 7); ``drop`` O(log N); ``select``
O(S + k log S); ``recheck`` O(txs of the given senders × log N).

Unwind: :meth:`Mempool.drop` is the primitive of LP-0202's table ("drop
pointer, O(log N)").  It is idempotent: dropping an absent id is a no-op that
returns ``False``, from any state.

Threads: every public method holds one internal lock, so the unwind calls
(``drop``/``remove``) may come from any thread at any time (LP-0202's unwind
contract); ``nonce_floor``, ``balance`` and ``clock`` run under that lock and must not
call back into the pool.  Views handed out are immutable and may be shared with any thread.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from zapstack.errors import InvalidTx, LocalProtocolError, Stage, WireCode
from zapstack.mempool.heap import IndexedHeap
from zapstack.mempool.senders import (
    MAX_AGE_S,
    Entry,
    SenderLimits,
    balance_verdict,
    nonce_verdict,
    recheck_plan,
    select_rank,
    slot_verdict,
    tx_cost,
)
from zapstack.mempool.stats import PipelineStats
from zapstack.zap.views import TxView

__all__ = ["AccountState", "Admitted", "Balance", "Mempool", "NonceFloor"]

NonceFloor = Callable[[bytes], int]
"""``sender -> next nonce the committed state expects`` (0 for a fresh account)."""

Balance = Callable[[bytes], int]
"""``sender -> committed balance`` (0 for a fresh account)."""

AccountState = Callable[[bytes], tuple[int, int]]
"""``sender -> (committed nonce, committed balance)``: both rules' state in one read."""


def _zero_floor(_sender: bytes) -> int:
    return 0


@dataclass(frozen=True, slots=True)
class Admitted:
    """A tx entered the pool."""

    tx_id: bytes
    """Its id (transcript digest)."""
    evicted: tuple[bytes, ...]
    """Ids of lower-fee txs evicted to make room, lowest priority first."""
    replaced: bytes | None
    """Id of the same-sender, same-nonce tx it replaced, if any."""
    account_nonce: int = 0
    """The sender's committed nonce the rules were checked against."""


class Mempool:
    """Fee-ranked, nonce-ordered, capacity-bounded pool of tx views."""

    def __init__(
        self,
        *,
        max_txs: int = 50_000,
        max_bytes: int = 64 * 1024 * 1024,
        min_fee: int = 1,
        nonce_floor: NonceFloor = _zero_floor,
        balance: Balance | None = None,
        max_per_sender: int = 128,
        max_nonce_gap: int = 128,
        replace_bump_pct: int = 10,
        queued_rounds: int = 16,
        stats: PipelineStats | None = None,
        account: AccountState | None = None,
        clock: Callable[[], float] | None = None,
        max_age: float = MAX_AGE_S,
    ) -> None:
        """``max_txs``, ``max_bytes``: capacity (txs, sum of frame sizes); ``min_fee``: the fee
        floor (rule 2); state hooks: ``nonce_floor`` (the account's committed nonce), ``balance``
        (its committed balance; ``None``: not checked, for pools with no state behind them) or
        ``account`` (both in one read; replaces the other two and checks the balance);
        per-sender bounds: :class:`~zapstack.mempool.senders.SenderLimits`; ``stats``: counters
        to bump (a fresh :class:`PipelineStats` by default); ``clock`` (seconds, non-decreasing;
        ``None``: no aging) and ``max_age``: the age bound of :meth:`select`."""
        if max_txs < 1 or max_bytes < 1 or min_fee < 0 or not max_age >= 0:
            raise LocalProtocolError("mempool capacity must be positive, min_fee, max_age >= 0")
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.min_fee = min_fee
        self.account = account
        self.nonce_floor: NonceFloor = (lambda s: account(s)[0]) if account else nonce_floor
        self.balance = balance
        self.limits = SenderLimits(max_per_sender, max_nonce_gap, replace_bump_pct, queued_rounds)
        """Per-sender bounds (see :mod:`zapstack.mempool.senders`)."""
        self.stats = stats if stats is not None else PipelineStats()
        self.clock, self.max_age = clock, max_age
        self._by_id: dict[bytes, Entry] = {}
        self._by_sender: dict[bytes, dict[int, Entry]] = {}
        self._ranked: IndexedHeap[Entry] = IndexedHeap()
        self._bytes = 0
        self._seq = 0
        self._lock = threading.Lock()

    # -- queries -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._by_id

    @property
    def bytes_used(self) -> int:
        """Sum of the frame sizes held."""
        return self._bytes

    def get(self, tx_id: bytes) -> TxView | None:
        """The pooled view with this id, or ``None``."""
        e = self._by_id.get(tx_id)
        return e.view if e is not None else None

    def lowest_fee(self) -> int | None:
        """Fee of the next eviction victim (``None`` when empty)."""
        low = self._ranked.peek()
        return low.fee if low is not None else None

    def sender_nonces(self, sender: bytes) -> list[int]:
        """Nonces the pool holds for ``sender``, ascending."""
        return sorted(self._by_sender.get(sender, ()))

    # -- admission ---------------------------------------------------------------
    def insert(self, view: TxView) -> Admitted:
        """Admit ``view`` (stage 5) or raise ``InvalidTx``; see the rule table above."""
        with self._lock:
            old, floor = self._admissible(view)
            self._seq += 1
            arrived = self.clock() if self.clock else 0.0
            entry = Entry(view, view.tx_id, view.sender, self._seq, arrived)
            if old is not None:
                self._unlink(old)
            victims = self._make_room(entry)
            if victims is None:
                if old is not None:
                    self._link(old)
                raise self._reject(WireCode.MEMPOOL_FULL, "mempool full of txs paying >= this fee")
            self._link(entry)
            self.stats.admitted += 1
            self.stats.evicted += len(victims)
            if old is not None:
                self.stats.replaced += 1
            evicted = tuple(v.tx_id for v in victims)
            return Admitted(entry.tx_id, evicted, old.tx_id if old else None, floor)

    def precheck(self, view: TxView) -> int:
        """Rules 1-7 alone (lookups), pool unchanged: run them before verifying a signature;
        returns the sender's committed nonce they were checked against."""
        with self._lock:
            return self._admissible(view)[1]

    def _state(self, sender: bytes) -> tuple[int, int | None]:  # (nonce, balance or None)
        if self.account is not None:
            return self.account(sender)
        return self.nonce_floor(sender), None if self.balance is None else self.balance(sender)

    def _admissible(self, view: TxView) -> tuple[Entry | None, int]:
        """Rules 1-7; returns the tx ``view`` would replace and the sender's nonce floor."""
        if view.tx_id in self._by_id:
            raise self._reject(WireCode.DUPLICATE, "tx already in the mempool")
        if view.fee < self.min_fee:
            raise self._reject(
                WireCode.FEE_TOO_LOW, f"fee {view.fee} below the floor {self.min_fee}"
            )
        sender = view.sender
        slots = self._by_sender.get(sender, {})
        old = slots.get(view.nonce)
        floor, have = self._state(sender)
        verdict = nonce_verdict(view.nonce, floor, self.limits) or slot_verdict(
            len(slots), old.fee if old is not None else None, view.fee, self.limits
        )
        if verdict is None and have is not None:
            pending = sum(e.cost for e in slots.values() if e is not old)
            verdict = balance_verdict(have, pending, tx_cost(view))
        if verdict is not None:
            raise self._reject(*verdict)
        return old, floor

    def _make_room(self, entry: Entry) -> list[Entry] | None:
        """Rule 8: evict until ``entry`` fits; ``None`` (pool restored) if it cannot."""
        victims: list[Entry] = []
        while len(self._by_id) + 1 > self.max_txs or self._bytes + entry.size > self.max_bytes:
            low = self._ranked.peek()
            if (
                low is None
                or low.fee >= entry.fee
                or (low.sender == entry.sender and low.nonce < entry.nonce)
            ):
                for v in victims:  # restore: the pool is left exactly as it was
                    self._link(v)
                return None
            for v in self._chain_from(low):  # never strand a sender's higher nonces
                self._unlink(v)
                victims.append(v)
        return victims

    def _chain_from(self, e: Entry) -> list[Entry]:
        """``e`` and its sender's pooled txs with higher nonces, ascending."""
        slots = self._by_sender[e.sender]
        return [slots[n] for n in sorted(slots) if n >= e.nonce]

    # -- block building ----------------------------------------------------------
    def select(
        self, n: int, max_bytes: int | None = None, floors: Mapping[bytes, int] | None = None
    ) -> list[TxView]:
        """Up to ``n`` txs for a block, best first, never copying a buffer.

        Greedy: repeatedly take the first-ranked tx among each sender's *next* nonce (the
        account's, or ``floors[sender]`` if higher: building on an uncommitted block; then one
        more per tx taken): aged txs (waited over ``max_age``) oldest first, then by fee.  A gap
        ends a sender's queue; so does a tx that would overflow ``max_bytes`` (skipped: its
        successors may not precede it).  The pool is not modified.
        """
        with self._lock:
            return self._select(n, max_bytes, floors or {})

    def _select(self, n: int, max_bytes: int | None, floors: Mapping[bytes, int]) -> list[TxView]:
        now, age = (self.clock() if self.clock else None), self.max_age
        heads: list[tuple[tuple[int, float, int], Entry]] = []
        for sender, slots in self._by_sender.items():
            e = slots.get(max(self.nonce_floor(sender), floors.get(sender, 0)))
            if e is not None:
                heads.append((select_rank(e, now, age), e))
        heapq.heapify(heads)  # ranks are unique: an Entry is never compared
        out: list[TxView] = []
        used = 0
        while heads and len(out) < n:
            _, e = heapq.heappop(heads)
            if max_bytes is not None and used + e.size > max_bytes:
                continue
            out.append(e.view)
            used += e.size
            nxt = self._by_sender[e.sender].get(e.nonce + 1)
            if nxt is not None:
                heapq.heappush(heads, (select_rank(nxt, now, age), nxt))
        return out

    # -- removal (unwind) --------------------------------------------------------
    def drop(self, tx_id: bytes) -> bool:
        """Drop one tx by id in O(log N); ``False`` if absent.  Idempotent, any thread."""
        with self._lock:
            return self._drop(tx_id)

    def remove(self, tx_ids: Iterable[bytes]) -> int:
        """Drop every id present (a committed block's txs); returns how many were held."""
        ids = list(tx_ids)
        with self._lock:
            return sum(self._drop(t) for t in ids)

    def _drop(self, tx_id: bytes) -> bool:
        e = self._by_id.get(tx_id)
        if e is None:
            return False
        self._unlink(e)
        self.stats.removed += 1
        return True

    def drop_with_successors(self, tx_id: bytes) -> int:
        """Drop a tx that failed inside a block and its sender's higher nonces (they could never
        execute before it); returns how many were dropped (0: absent).  Idempotent, any thread."""
        with self._lock:
            e = self._by_id.get(tx_id)
            if e is None:
                return 0
            chain = self._chain_from(e)
            for v in chain:
                self._unlink(v)
            self.stats.removed += len(chain)
            return len(chain)

    def recheck(self, senders: Iterable[bytes] | None = None) -> int:
        """Re-apply the state rules (module docstring) after a commit to ``senders`` (the
        accounts a committed block touched; ``None``: all); returns how many txs were dropped."""
        with self._lock:
            targets = list(self._by_sender) if senders is None else list(senders)
            dropped = sum(self._recheck_sender(s) for s in targets)
            self.stats.pruned += dropped
            return dropped

    def _recheck_sender(self, sender: bytes) -> int:
        slots = self._by_sender.get(sender)
        if not slots:
            return 0
        floor, budget = self._state(sender)
        gone = recheck_plan(slots, floor, budget, self.limits.queued_rounds)
        for e in gone:
            self._unlink(e)
        return len(gone)

    def check(self) -> None:
        """Assert every internal invariant (tests only)."""
        with self._lock:
            self._check()

    def _check(self) -> None:
        self._ranked.check()
        entries = self._ranked.items()
        assert len(entries) == len(self._by_id)
        assert sum(e.size for e in entries) == self._bytes
        assert all(self._by_id[e.tx_id] is e for e in entries)
        assert sum(len(s) for s in self._by_sender.values()) == len(entries)
        assert all(s for s in self._by_sender.values()), "empty sender map kept"
        assert len(entries) <= self.max_txs and self._bytes <= self.max_bytes
        assert all(len(s) <= self.limits.max_per_sender for s in self._by_sender.values())

    # -- internals ---------------------------------------------------------------
    def _reject(self, code: WireCode, reason: str) -> InvalidTx:
        self.stats.reject(Stage.MEMPOOL, code)
        return InvalidTx(reason, code=code)

    def _link(self, e: Entry) -> None:
        self._by_id[e.tx_id] = e
        self._by_sender.setdefault(e.sender, {})[e.nonce] = e
        self._ranked.push(e)
        self._bytes += e.size

    def _unlink(self, e: Entry) -> None:
        del self._by_id[e.tx_id]
        slots = self._by_sender[e.sender]
        del slots[e.nonce]
        if not slots:
            del self._by_sender[e.sender]
        self._ranked.remove(e)
        self._bytes -= e.size
