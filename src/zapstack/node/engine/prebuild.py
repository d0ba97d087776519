"""Block N+1 built ahead on block N's speculative branch (LP-0202 pipeline 2).

Theory of operation
-------------------
Once this validator voted for block N of (N, r), N sits executed on a
speculative branch of its :class:`~zapstack.verify.BlockExecutor`.  If we
propose (N+1, round 0), :func:`start` builds that block now, while N's cert
legs are still arriving, instead of after N is final:

1. select txs for N+1 from the mempool with each sender of N's txs starting
   past its last nonce in N (``Mempool.select(floors=...)``: N's txs are not
   picked again, their senders' next nonces follow them);
2. fork N's candidate branch (``Branch.fork()``: the same snapshot, a copy of
   N's writes -- N's branch is untouched and may still commit) and run the
   producer's Build stage on the fork (:class:`~zapstack.producer.BuildChain`:
   failing txs left out, post-state root, block signed with parent = N's id);
   the fork is never committed;
3. keep the signed block and its open build chain as :attr:`Prebuild.ready`.

At the proposal (:func:`take`, from the engine's tick once N is final and the
block interval passed) a block built for exactly (N+1, round 0) on the
finalized head goes out at once.  A small block (under :data:`TOP_UP_TXS`
txs) first gets the txs that came in since appended (``BuildChain.extend``:
only they execute, but the whole block is laid out and signed again), so at
light load building ahead does not make a tx wait a height longer; a larger
one goes as built and the newcomers take the next block, itself built ahead.
Either way the build leaves the critical path.  A pre-build still running
for it is awaited (it is further along than a new build).  Anything else --
N finalized another block, a later round, N's branch gone before the fork --
drops it (:func:`forget_stale`, every tick; the fork is discarded) and the
proposer builds as before.

One pre-build at a time (a job: ``Consensus.spawn``), on the critical path's
threads (``Io.run``: it is the next height's build).  Its select and failures
see the pool as it was at the pre-build: a tx that left the pool meanwhile
(evicted, replaced) stays in the block and is still valid if the chain state
says so -- every validator re-executes the block.  Txs the build left out are
dropped from the pool only when the block is proposed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zapstack.errors import StoreError, ZapError
from zapstack.node.engine import propose
from zapstack.node.engine.propose import MAX_BLOCK_BYTES, Proposal
from zapstack.node.engine.state import log
from zapstack.producer.build import BuildChain, Built
from zapstack.verify.executor import ChainBranch
from zapstack.zap.views import BlockView, TxView
from zapstack.zapdb import Branch

if TYPE_CHECKING:
    from zapstack.node.engine.core import Consensus

__all__ = ["TOP_UP_TXS", "Ahead", "Prebuild", "floors_after", "forget_stale", "start", "take"]

TOP_UP_TXS = 256
"""A block built ahead is topped up to this many txs at most (appending re-lays out
and re-signs the whole block on the critical path: only a small block is worth it)."""


@dataclass(slots=True)
class Ahead:
    """A block built ahead, its build chain still open to append txs."""

    proposal: Proposal
    """The signed block as built."""
    chain: BuildChain
    """Its Build stage (slot 0) on the fork; closed when the block is proposed or dropped."""
    floors: dict[bytes, int]
    """Sender -> next nonce after the parent's and this block's txs."""
    room: int
    """Txs it may still take at the proposal (up to :data:`TOP_UP_TXS` and the budget)."""
    room_bytes: int
    """Payload bytes still allowed."""


@dataclass(slots=True)
class Prebuild:
    """One engine's pre-build state (owned by the event loop)."""

    target: tuple[int, bytes] | None = None
    """(height, parent id) of the pre-build in flight or ready."""
    task: asyncio.Task[None] | None = None
    """The job building it."""
    ready: Ahead | None = None
    """The block built for ``target``, not proposed yet."""

    def drop(self) -> None:
        """Forget the pre-build; its fork is discarded (idempotent)."""
        if self.ready is not None:
            self.ready.chain.close()
        self.target, self.ready = None, None


class _Fork:
    """A :class:`~zapstack.producer.BuildStore` whose one branch is a fork of a candidate."""

    def __init__(self, branch: ChainBranch[Any]) -> None:
        self._branch = branch

    def snapshot(self) -> ChainBranch[Any]:
        return self._branch

    def root(self) -> bytes:
        return self._branch.root()


def floors_after(txs: list[TxView], floors: dict[bytes, int] | None = None) -> dict[bytes, int]:
    """``floors`` (a copy) raised to the nonce after each sender's last tx in ``txs``."""
    out = dict(floors or {})
    for tx in txs:
        sender = bytes(tx.sender)
        out[sender] = max(out.get(sender, 0), tx.nonce + 1)
    return out


def start(c: Consensus, parent: BlockView) -> None:
    """We voted for ``parent``: pre-build the next height's block if we propose it."""
    height = parent.height + 1
    if c.halted or c.g.proposer_of(height, 0) != c.me or (height, 0) in c.proposed:
        return
    st, target = c.prebuild, (height, parent.block_id)
    if st.target == target or (st.task is not None and not st.task.done()):
        return  # built (or building) already; one pre-build at a time
    st.drop()
    st.target = target
    n = propose.budget(c, height)
    st.task = c.spawn(_job(c, target, parent, n))


async def _job(c: Consensus, target: tuple[int, bytes], parent: BlockView, n: int) -> None:
    ahead: Ahead | None = await c.io.run(_build, c, target, parent, n)
    if ahead is None:
        return
    st = c.prebuild
    if st.target != target or st.ready is not None:
        ahead.chain.close()  # dropped while we built
        return
    st.ready = ahead
    c.stats["prebuilt"] += 1


def _build(c: Consensus, target: tuple[int, bytes], block: BlockView, n: int) -> Ahead | None:
    """Worker thread: fork the parent's candidate branch, build on it (None: it is gone)."""
    height, parent = target
    branch = c.executor.branch_of(parent)
    if not isinstance(branch, Branch):
        return None  # gone (or not a ZapDB branch: nothing to fork)
    try:
        fork = branch.fork()  # under the branch's lock: never half of a commit
    except StoreError:  # committed or discarded meanwhile
        return None
    floors = floors_after(block.txs())
    chain = propose.build_chain(c, _Fork(fork), height, parent)
    try:
        built = chain.build(0, c.mempool.select(n, MAX_BLOCK_BYTES, floors))
    except BaseException:
        chain.close()
        raise
    return Ahead(
        Proposal(height, parent, bytes(built.view.buffer), built.failures),
        chain,
        floors_after(list(built.included), floors),
        min(n, TOP_UP_TXS) - len(built.included),
        MAX_BLOCK_BYTES - sum(len(tx) for tx in built.included),
    )


def _top_up(c: Consensus, ahead: Ahead) -> Proposal:
    """Worker thread: append the txs that arrived since the pre-build, if there is room."""
    p = ahead.proposal
    txs = c.mempool.select(ahead.room, ahead.room_bytes, ahead.floors)
    if not txs:
        return p
    grown: Built = ahead.chain.extend(0, txs)
    return Proposal(p.height, p.parent, bytes(grown.view.buffer), p.failures + grown.failures)


def forget_stale(c: Consensus) -> None:
    """Drop a pre-build whose parent can no longer be final before our round-0 proposal."""
    st = c.prebuild
    if st.target is None:
        return
    height, parent = st.target
    if height == c.height + 1:
        return  # built on a candidate of the height being decided
    if (height, parent, 0) == (c.height, c.executor.head, c.round):
        return  # its parent is final: our proposal is due soon
    st.drop()


async def take(c: Consensus, height: int, round_: int) -> Proposal | None:
    """The block pre-built for (height, round_) on the finalized head, or None."""
    st = c.prebuild
    if round_ != 0 or st.target != (height, c.executor.head):
        st.drop()  # built on another block (or none)
        return None
    if st.task is not None and not st.task.done():
        await asyncio.wait({st.task})  # nearly done: sooner than a build from scratch
    ahead, st.ready, st.target = st.ready, None, None
    if ahead is None:
        return None
    try:
        proposal = ahead.proposal if ahead.room <= 0 else await c.io.run(_top_up, c, ahead)
    except ZapError as exc:  # cannot happen (the newest slot, one builder): say so, go on
        log.warning("height %d: appending to the pre-built block failed: %s", height, exc)
        proposal = ahead.proposal
    finally:
        ahead.chain.close()
    c.stats["prebuilt_proposed"] += 1
    return proposal
