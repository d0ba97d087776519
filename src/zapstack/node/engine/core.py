"""The engine's state machine: one validator's state, its timer and its dispatch.

Contract
--------
:class:`Consensus` owns every piece of per-height state (height, round,
votes, Corona sessions, the rounds it aggregates, messages from the future,
the finalized history, counters) and drives the phases, which are free
functions over it (:mod:`.propose`, :mod:`.vote`, :mod:`.aggregate`,
:mod:`.commit`):

* :meth:`Consensus.tick` (the driver calls it every few ms) runs the
  aggregated rounds' timers (late legs, deadlines; a round is forgotten 4
  round-timeouts after it started), changes round when the current one timed
  out and proposes when this validator is due.
* :meth:`Consensus.handle` takes one authenticated message: FINAL and
  CERT_UPGRADE go to the commit phase at any height; a message for a later
  height waits in ``future`` (the last 512) until :func:`~.commit.commit`
  replays it; a late PROPOSAL of a decided height is discarded; the rest
  goes through :data:`_HANDLERS`.
* Round change (:meth:`Consensus.change_round`) abandons the rounds of this
  height we aggregate that did not finalize (``ConsensusRound.abandon``,
  idempotent) and destroys our Corona sessions prepared for older rounds.
* Corona round 1 runs ahead (:mod:`.precommit`): the tick starts preparing
  the next sessions when quiet (a background job, one at a time: the tick
  never waits for it), CORONA_PRECOMMIT (for a later height by design) is
  held for the proposal, and our proposal feeds what we hold to its round.
* The next proposer pre-builds its block on the block it voted for
  (:mod:`.prebuild`); when that block is final and the proposal is due, the
  pre-built block goes out at once, otherwise the block is built then.
* Background jobs (:meth:`Consensus.spawn`: round-1 preparation, pre-builds,
  CERT_UPGRADE checks) run as tasks of their own, never awaited by the tick
  or the message loop; their blocking work goes through ``Io.run_background``
  (pre-builds: ``Io.run``, they are the next height's critical path).  A job
  failing with more than a protocol error (a full disk, a bug) makes the
  next tick or message raise it (:attr:`Consensus.crashed`): the driver halts.
* Each failed round lengthens the next one's timeout
  (:meth:`Consensus.round_timeout_ms`).
* After ``halt_height`` or a fatal store failure (:attr:`Consensus.fatal`)
  nothing new starts; finished heights still aggregate their late legs.

The engine runs on one event loop (or a test's loop); blocking work goes
through ``Io.run``.  It is not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from zapstack.consensus.digest import CertContext
from zapstack.consensus.legs.corona import CoronaSigner, Key, Presessions
from zapstack.errors import FatalStoreError, ZapError
from zapstack.mempool import Mempool
from zapstack.node.blockstore import BlockStore
from zapstack.node.engine import aggregate, commit, prebuild, precommit, propose, vote
from zapstack.node.engine.state import Aggregation, HeightRecord, Io, log
from zapstack.node.genesis import Genesis, NodeKeys
from zapstack.node.wire import Message, MsgType
from zapstack.verify.executor import BlockExecutor

__all__ = ["STATS", "Consensus"]

STATS = (
    "proposed",
    "votes_sent",
    "finalized",
    "round_changes",
    "blocks_rejected",
    "certs_rejected",
    "cert_upgrades",
    "corona_prepared",
    "corona_fresh",
    "prebuilt",
    "prebuilt_proposed",
)
"""The engine's counters (``Consensus.stats``; the node exports them as metrics)."""


class Consensus:
    """One validator's consensus state machine; see the module docstring."""

    def __init__(
        self,
        genesis: Genesis,
        keys: NodeKeys,
        executor: BlockExecutor,
        mempool: Mempool,
        blocks: BlockStore,
        io: Io,
        *,
        on_final: Callable[[HeightRecord, bytes], Awaitable[None]] | None = None,
        halt_height: int | None = None,
        entropy: Callable[[int], bytes] = precommit.default_entropy,
    ) -> None:
        self.g = genesis
        self.keys = keys
        self.executor = executor
        self.mempool = mempool
        self.blocks = blocks
        self.io = io
        self.on_final = on_final
        self.halt_height = halt_height
        """Stop deciding after this height (devnets compare roots there)."""
        self.fatal: FatalStoreError | None = None
        """Set when a durable write failed (disk full): the node halts at its last
        committed block; the operator restarts it and it re-syncs from peers."""
        self.height = executor.height + 1
        """The height being decided."""
        self.round = 0
        self.round_started_ms = io.now_ms()
        self.last_final_ms = io.now_ms()
        self.stages: dict[str, int] = {}
        """This height's stage times so far (:attr:`HeightRecord.stages_ms`)."""
        self.proposed: set[tuple[int, int]] = set()
        self.voted: dict[tuple[int, int], bytes] = {}
        self.corona: dict[tuple[int, int], tuple[CoronaSigner, int]] = {}
        """(height, round) -> our Corona round-1 session and when it was opened.
        Kept past finality: Corona upgrades the cert until the policy deadline."""
        self.entropy = entropy
        """Fresh randomness for Corona round-1 nonces (injected; tests fix it)."""
        self.presessions = Presessions()
        """Our Corona round-1 sessions prepared ahead of their proposals."""
        self.precommits: dict[Key, dict[int, bytes]] = {}
        """Aggregator side: commitments prepared ahead for sessions we will aggregate."""
        self.early_signers: dict[Key, Message] = {}
        """CORONA_SIGNERS that arrived before our vote of that (height, round)."""
        self.signers_fixed: dict[Key, tuple[int, ...]] = {}
        """Aggregator side: signer sets announced ahead of our proposal."""
        self.aggs: dict[tuple[int, int], Aggregation] = {}
        self._init_background()
        self.future: list[Message] = []
        self.history: list[HeightRecord] = []
        self.stats: dict[str, int] = dict.fromkeys(STATS, 0)

    # ----------------------------------------------------------------- helpers
    def mark(self, stage: str) -> None:
        """Time ``stage`` of the current height (ms since we entered it)."""
        self.stages[stage] = self.io.now_ms() - self.last_final_ms

    @property
    def halted(self) -> bool:
        """True once ``halt_height`` is final here, or after a fatal store failure."""
        if self.fatal is not None:
            return True
        return self.halt_height is not None and self.height > self.halt_height

    @property
    def me(self) -> int:
        return self.keys.index

    def round_timeout_ms(self, round_: int = 0) -> int:
        """How long round ``round_`` may take before the next proposer takes over.

        Grows by half the base per failed round (capped at 4x): a network that is
        slower than the base -- starting up, overloaded -- still reaches a round
        long enough to finish, the usual BFT liveness rule.
        """
        base = self.g.policy.timeout_ms + self.g.block_interval_ms + 2000
        return base + base * min(round_, 6) // 2

    def ctx(self, height: int, round_: int, block_id: bytes) -> CertContext:
        """The cert context every leg of (height, round_, block_id) signs."""
        return CertContext(self.g.chain_id, height, round_, block_id, self.g.vset.root)

    # ---------------------------------------------------------- background jobs
    def _init_background(self) -> None:
        self.jobs: set[asyncio.Task[None]] = set()
        """Background jobs running (:meth:`spawn`)."""
        self.crashed: BaseException | None = None
        """What a background job raised beyond a protocol error (a full disk, a bug):
        the next :meth:`tick` or :meth:`handle` raises it, so the driver halts."""
        self.refilling: asyncio.Task[None] | None = None
        """The round-1 preparation in flight (one at a time)."""
        self.prebuild = prebuild.Prebuild()
        """The next height's block built ahead (:mod:`.prebuild`)."""
        self.upgrades = asyncio.Lock()
        """CERT_UPGRADE checks run as background jobs, one stored cert change at a time."""
        self.upgrades_queued = 0
        """CERT_UPGRADE jobs started and not finished (bounded)."""

    def spawn(self, job: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``job`` as a background task of its own (nobody awaits it)."""
        task = asyncio.get_running_loop().create_task(job)
        self.jobs.add(task)
        task.add_done_callback(self._job_done)
        return task

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self.jobs.discard(task)
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, ZapError) and not isinstance(exc, FatalStoreError):
            log.warning("background job: %s", exc)  # a protocol error: dropped, as in a loop
        elif exc is not None and self.crashed is None:
            self.crashed = exc  # raised by the next tick or message: the driver halts

    def _reraise(self) -> None:
        if self.crashed is not None:
            raise self.crashed

    async def settle(self) -> None:
        """Wait until no background job runs (tests; a driver shutting down)."""
        while self.jobs:
            await asyncio.wait(set(self.jobs))

    # -------------------------------------------------------------------- timer
    async def tick(self) -> None:
        """Called periodically: propose when due, deadlines, round changes."""
        self._reraise()
        now = self.io.now_ms()
        for key, agg in list(self.aggs.items()):
            # on_timer is a few comparisons (no crypto): run inline rather than
            # handing a worker thread a job 50 times a second per aggregation
            async with agg.lock:
                aggregate.emit(self, agg, key, agg.round.on_timer(now))
            if now - agg.started_ms > 4 * self.round_timeout_ms(key[1]):
                self.aggs.pop(key, None)
        if self.halted:
            return  # finished heights still aggregate their late legs; nothing new starts
        if now - self.round_started_ms > self.round_timeout_ms(self.round):
            await self.change_round(self.round + 1, now)
        prebuild.forget_stale(self)
        key = (self.height, self.round)
        due = now - self.last_final_ms >= self.g.block_interval_ms
        if due and key not in self.proposed and self.g.proposer_of(*key) == self.me:
            self.proposed.add(key)
            await propose.propose(self, *key, await prebuild.take(self, *key))
            await precommit.feed(self, key)
        precommit.refill(self)

    async def change_round(self, round_: int, now: int) -> None:
        """Move to ``round_`` of the current height; abandon our unfinished older rounds.

        Each abandon waits for a call in flight on that round (its lock): a round
        is never unwound while one of its stages runs.
        """
        log.info("height %d: round %d -> %d", self.height, self.round, round_)
        stale = [
            agg
            for key, agg in self.aggs.items()
            if key[0] == self.height and key[1] < round_ and agg.record is None
        ]
        self.round = round_
        self.round_started_ms = now
        self.stats["round_changes"] += 1
        self.presessions.drop_before(self.height, round_)  # never used: nonces erased
        for agg in stale:  # a round that finalized meanwhile ignores abandon
            async with agg.lock:
                agg.round.abandon()

    # --------------------------------------------------------------- dispatch
    async def handle(self, msg: Message) -> None:
        """One message from validator ``msg.sender`` (already authenticated)."""
        self._reraise()
        if not 0 <= msg.sender < self.g.vset.n:
            return
        if self.halted and msg.height > (self.halt_height or 0):
            return
        if self.fatal is not None:
            return  # halted at the last committed block until the operator restarts us
        if msg.type is MsgType.FINAL:
            with contextlib.suppress(FatalStoreError):  # recorded in self.fatal
                await commit.on_final(self, msg)
            return
        if msg.type is MsgType.CERT_UPGRADE:
            commit.upgrade_later(self, msg)  # a background job: the loop moves on
            return
        if msg.type is MsgType.CORONA_PRECOMMIT:
            await precommit.on_precommit(self, msg)  # for a later height by design
            return
        if msg.height > self.height:
            self.future.append(msg)  # we are behind; replay when we get there
            del self.future[:-512]
            return
        if msg.height < self.height and msg.type is MsgType.PROPOSAL:
            self.stats["blocks_rejected"] += 1  # late block of a fork race: discarded
            return
        handler = _HANDLERS.get(msg.type)
        if handler is not None:
            await handler(self, msg)

    async def commit(
        self, block_bytes: bytes, cert_bytes: bytes, round_: int, proposer: int
    ) -> None:
        """Store and commit a block whose cert was verified; advance the height.

        A failing durable write (ZapDB or the block store: disk full, I/O error)
        discards the txn, records :attr:`fatal` and raises it: the node halts at
        its last committed block (LP-0202 failure matrix, "State write fails").
        See :func:`zapstack.node.engine.commit.commit`.
        """
        await commit.commit(self, block_bytes, cert_bytes, round_, proposer)


_HANDLERS: dict[MsgType, Callable[[Consensus, Message], Awaitable[None]]] = {
    MsgType.PROPOSAL: vote.on_proposal,
    MsgType.SHARE: aggregate.on_share,
    MsgType.CORONA_COMMIT: aggregate.on_share,
    MsgType.CORONA_RESPONSE: aggregate.on_share,
    MsgType.CORONA_SIGNERS: vote.on_signers,
}
"""Message type -> phase handler for messages of the current height."""
