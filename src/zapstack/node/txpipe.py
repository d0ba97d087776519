"""The node's tx pipeline: TX_SUBMIT and gossip admission, signatures checked off the loop.

Contract
--------
:class:`TxPipeline` owns the mempool, the tx receiver (stages 1-5, run with
``defer_verification``), the TX_SUBMIT service, the verified-signature cache
and the verify thread pool.  The event loop only moves bytes and runs lookups:

* **TX_SUBMIT**: stages 1-4 without the signature, then the cheap checks
  (pushback, the pool's rules 1-7) on the loop; a tx that passes becomes a
  :class:`~zapstack.mempool.actions.VerifyRequest` in the service's outbox.
* **MEMPOOL_GOSSIP** (:meth:`TxPipeline.take_gossip`): each frame is parsed
  (no signature) and prechecked on the loop; a tx that passes is queued.
* :meth:`TxPipeline.run` (a node task), woken by new work, lets more arrive
  for :data:`COALESCE_S` (one hand-off to the pool per batch, not per tx), then
  takes everything queued, in arrival order, as one batch (at most
  :data:`MAX_BATCH`), verifies it on the verify
  pool's threads (:meth:`ThreadVerifier.submit_views
  <zapstack.verify.ThreadVerifier.submit_views>`: the crypto releases the
  GIL; the cache skips pairs seen before and records the ones that verify, so
  block verify skips them later), then, back on the loop and in the same
  order, reports each submit's verdict to the receiver (which inserts and
  answers the submitter) and inserts each good gossiped tx (a refused one is
  skipped).  One batch at a time: per sender, txs are admitted in the order
  they arrived.  Admitted submits are queued for gossip (``gossip_out``).
* **Pushback**: :meth:`TxPipeline.finalized` tracks what the chain finalizes
  (txs per second over the last :data:`RATE_WINDOW_S`) and sets the receiver's
  ``max_pending`` to :data:`PENDING_S` seconds of it, between
  :data:`MIN_PENDING` and :data:`MAX_PENDING`: submits past it are answered
  ``RATE_LIMITED`` before any signature check, and the credit in every answer
  falls to 0 before that.

State: :class:`AccountReader` is the mempool's state hook: a sender's
committed (nonce, balance) read once per committed version (a tx is looked up
before its signature check and again at insert: one store read).

Bounds: gossip views waiting for the pool are capped at :data:`MAX_QUEUED`
(beyond it gossip is dropped: it is best effort, the submitter's validator
holds the tx); submits are bounded by the receiver's admission controller.
Single event loop; :meth:`close` releases the threads (idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from zapstack.errors import ZapError
from zapstack.mempool import Mempool
from zapstack.mempool.actions import TxAdmitted, TxRejected, VerifyRequest
from zapstack.mempool.handler import ReplyStream, StopStream, TxSubmitService
from zapstack.mempool.pool import AccountState
from zapstack.mempool.receive import TxReceiver
from zapstack.verify import Account, ThreadVerifier, VerifiedCache, account_key
from zapstack.zap.frames import parse_tx
from zapstack.zap.schema import MAX_TX_SIZE
from zapstack.zap.views import TxView
from zapstack.zapdb import ZapDB

__all__ = [
    "COALESCE_S",
    "MAX_BATCH",
    "MAX_PENDING",
    "MAX_QUEUED",
    "MIN_PENDING",
    "PENDING_S",
    "RATE_WINDOW_S",
    "AccountReader",
    "TxPipeline",
    "pending_bound",
]

MAX_BATCH = 1024
"""Most signature checks handed to the pool at once."""
COALESCE_S = 0.02
"""Seconds the verify task waits after a wake-up for more work to batch with it."""
MAX_QUEUED = 20_000
"""Most gossiped txs waiting for a signature check."""
PENDING_S = 2.0
"""Seconds of finalized throughput the pool may hold before submits are pushed back.

The horizon it sets, at finalized rate R and height time H: the pool selects a tx that has
waited more than ``MAX_AGE_S`` (:mod:`zapstack.mempool.senders`, 1 s) before every younger
one, so from ``t + MAX_AGE_S`` on only older pooled txs are ahead of a tx admitted at ``t``:
at most ``max_pending = max(PENDING_S * R, MIN_PENDING)`` of them, drained at R.  At
R >= 2,000 tx/s that is ``PENDING_S`` seconds: proposed by ``t + MAX_AGE_S + PENDING_S``
and final one height later, so admitted submit->final <= 1 + 2 + H s; below it the floor
sets the drain time (``MIN_PENDING / R``: 3.2 s at 1,250 tx/s).  The
price: a block is at most the pool (~``PENDING_S * R`` txs), and a height costs a fixed c
(consensus legs) plus its txs' verify time, so the chain reaches about
``(PENDING_S - c) / PENDING_S`` of its verify-bound rate; lower would starve blocks (the
pool must hold more than one height of work: ``PENDING_S > c``)."""
MIN_PENDING = 4000
"""The pushback bound never falls below this.  A bound tied only to the measured rate
feeds back on itself: a small pool makes small blocks, which measure a small rate, which
keeps the pool small.  And the next proposer selects block N+1 while N's txs are still
pooled (pre-build), so the pool must hold a block being certified plus the next one.
Measured at 4,000 tx/s offered (4 validators on a 2-core box, 20 s windows):
floor 500: 445-615 tx/s finalized; 2,000: 800-1,035; 3,000: 1,122-1,214, p99 3.0-4.3 s in
every case.  Again after the transport batching (30 s windows, interleaved runs): 3,000:
1,038-1,213 tx/s, p99 3.5-4.3 s; 4,000: 1,160-1,296, p99 3.8-4.1 s; 4,500: 1,194-1,513,
p99 3.8-4.8 s.  A height's fixed cost (the four legs, ~0.65 core-s at 4 validators) is
paid per block, so a fuller pool buys throughput with latency; 4,000 keeps p99 about a
second under 5 s on a slow phase of the box.  A stalled chain still takes this many txs."""
MAX_PENDING = 16_000
"""Nor rises above this many txs."""
RATE_WINDOW_S = 10.0
"""Seconds of finalized heights the throughput estimate looks back over."""

Queued = VerifyRequest | TxView
"""A submit waiting for its verdict, or a gossiped tx waiting to enter the pool."""


class AccountReader:
    """``sender -> (committed nonce, balance)``, memoised per committed version.

    The memo is emptied whenever the store's version moves (a commit) and
    holds at most ``cap`` senders; an entry is kept only if it was read at
    the version the memo is for.  Thread-safe (one lock, O(1) under it).
    """

    def __init__(self, db: ZapDB, cap: int = 1 << 16) -> None:
        self.db = db
        self.cap = cap
        self.reads = 0
        """Store reads done (the rest were answered from the memo)."""
        self._memo: dict[bytes, tuple[int, int]] = {}
        self._version = -1
        self._lock = threading.Lock()

    def __call__(self, sender: bytes) -> tuple[int, int]:
        version = self.db.version
        with self._lock:
            if version != self._version:
                self._memo.clear()
                self._version = version
            hit = self._memo.get(sender)
        if hit is not None:
            return hit
        view = self.db.read()
        try:
            read_at = view.version
            acct = Account.decode(view.get(account_key(sender)))
        finally:
            view.close()
        out = (acct.nonce, acct.balance)
        with self._lock:
            self.reads += 1
            if read_at == self._version and len(self._memo) < self.cap:
                self._memo[sender] = out
        return out


def pending_bound(finals: Sequence[tuple[float, int]], now: float) -> int:
    """The pushback bound from ``(time, txs)`` of recent finalized heights.

    Throughput = the txs of the heights final after the oldest one of the last
    :data:`RATE_WINDOW_S`, over the time since that one (at least 1 s): the
    oldest height's own txs were gathered before the span began, so they do
    not count.  The bound is :data:`PENDING_S` of it, clamped to
    ``[MIN_PENDING, MAX_PENDING]``; under two heights: ``MIN_PENDING``.
    """
    recent = [(t, n) for t, n in finals if now - t <= RATE_WINDOW_S]
    if len(recent) < 2:
        return MIN_PENDING
    span = max(1.0, now - recent[0][0])
    rate = sum(n for _, n in recent[1:]) / span
    return max(MIN_PENDING, min(MAX_PENDING, int(rate * PENDING_S)))


class TxPipeline:
    """The mempool and everything that feeds it (see the module docstring)."""

    def __init__(
        self,
        account: AccountState,
        chain_id: int,
        *,
        stop_stream: StopStream,
        reply_stream: ReplyStream,
        workers: int = 2,
        clock: Callable[[], float] = time.monotonic,
        on_rejected: Callable[[TxRejected], None] | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.on_rejected = on_rejected
        """Told of every submit refused at stage 5 (the HTTP API's recent rejects)."""
        self.clock = clock
        self.sigcache = VerifiedCache()
        """Tx signatures verified here (admission, gossip): block verify skips them."""
        self.verifier = ThreadVerifier(workers, cache=self.sigcache)
        self.mempool = Mempool(account=account, clock=clock)
        self.rx = TxReceiver(
            self.mempool, chain_id=chain_id, defer_verification=True, max_pending=MIN_PENDING
        )
        self.txsvc = TxSubmitService(
            self.rx,
            clock=clock,
            stop_stream=stop_stream,
            reply_stream=reply_stream,
            notify=self._wake_up,
        )
        self.queue: deque[Queued] = deque()
        self.gossip_out: list[bytes] = []
        """Admitted submits, for the node's gossip loop."""
        self.dropped = 0
        """Gossiped txs dropped because the queue was full."""
        self._queued_ids: set[bytes] = set()
        self._finals: deque[tuple[float, int]] = deque(maxlen=256)
        self._wake = asyncio.Event()

    def _wake_up(self) -> None:
        self._wake.set()

    # -- inputs (event loop) -----------------------------------------------------
    def take_gossip(self, data: bytes) -> int:
        """Queue every tx of a MEMPOOL_GOSSIP batch that passes the pool's lookups.

        Per frame (concatenated tx frames): structure checks without the
        signature, then :meth:`Mempool.precheck`; a bad or refused tx is
        skipped, a bad length ends the batch.  Returns how many were queued.
        """
        self._drain_outbox()  # submits that arrived first stay ahead (arrival order)
        at, queued = 0, 0
        while at + 12 <= len(data):
            size = int.from_bytes(data[at + 8 : at + 12], "little")
            if not 0 < size <= MAX_TX_SIZE or at + size > len(data):
                break
            if len(self.queue) >= MAX_QUEUED:
                self.dropped += 1
            elif self._queue_gossiped(data[at : at + size]):
                queued += 1
            at += size
        if queued:
            self._wake.set()
        return queued

    def _queue_gossiped(self, frame: bytes) -> bool:
        """Parse (no signature) and precheck one gossiped frame; queue it if it passes."""
        try:
            view = parse_tx(frame, chain_id=self.chain_id, verify_signatures=False)
            if view.tx_id in self._queued_ids:
                return False
            self.mempool.precheck(view)
        except ZapError:
            return False
        self.queue.append(view)
        self._queued_ids.add(view.tx_id)
        return True

    def finalized(self, txs: int) -> None:
        """A height with ``txs`` txs was finalized: re-derive the pushback bound."""
        now = self.clock()
        self._finals.append((now, txs))
        self.rx.max_pending = pending_bound(self._finals, now)

    # -- the verify task ---------------------------------------------------------
    def _drain_outbox(self) -> None:
        """Move the service's actions on: requests to the queue, admitted txs to gossip."""
        out = self.txsvc.outbox
        while out:
            action = out.popleft()
            if isinstance(action, VerifyRequest):
                self.queue.append(action)
            elif isinstance(action, TxAdmitted):
                view = self.mempool.get(action.result.tx_id)
                if view is not None:
                    self.gossip_out.append(bytes(view.buffer))
            elif isinstance(action, TxRejected) and self.on_rejected is not None:
                self.on_rejected(action)

    def _next_batch(self) -> list[Queued]:
        n = min(len(self.queue), MAX_BATCH)
        return [self.queue.popleft() for _ in range(n)]

    async def verify_batch(self, batch: Sequence[Queued]) -> list[bool]:
        """The batch's signatures on the pool's threads, one verdict per item, in order."""
        views = [q.view if isinstance(q, VerifyRequest) else q for q in batch]
        verdicts: list[bool] = []
        for fut in self.verifier.submit_views(views):
            got: list[bool] = await asyncio.wrap_future(fut)
            verdicts += got
        return verdicts

    def apply(self, batch: Sequence[Queued], verdicts: Sequence[bool]) -> None:
        """Carry the verdicts out, in batch order (see the module docstring)."""
        for item, ok in zip(batch, verdicts, strict=True):
            if isinstance(item, VerifyRequest):
                self.txsvc.verified(item.peer, item.stream_id, ok)
                continue
            self._queued_ids.discard(item.tx_id)
            if ok:
                with contextlib.suppress(ZapError):
                    self.mempool.insert(item)
        self._drain_outbox()

    async def step(self) -> int:
        """Verify and apply one batch of what is queued; returns its size."""
        self._drain_outbox()
        batch = self._next_batch()
        if batch:
            self.apply(batch, await self.verify_batch(batch))
        return len(batch)

    async def run(self) -> None:
        """Forever: wait for work, then verify batches until the queue is empty."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(COALESCE_S)
            self._wake.clear()
            while await self.step():
                pass

    def close(self) -> None:
        """Release the verify threads (idempotent)."""
        self.verifier.close()
