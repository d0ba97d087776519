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
   producer's Build stage on the fork (:func:`.propose.build`: failing txs
   left out, post-state root, block signed with parent = N's id); the fork is
   always discarded, never committed;
3. keep the signed block as :attr:`Prebuild.ready`.

At the proposal (:func:`take`, from the engine's tick once N is final and the
block interval passed) a block built for exactly (N+1, round 0) on the
finalized head goes out at once, and the build leaves the critical path; a
pre-build still running for it is awaited (it is further along than a new
build).  Anything else -- N finalized another block, a later round, N's
branch gone before the fork -- drops it and the proposer builds as before.

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

from zapstack.errors import StoreError
from zapstack.node.engine import propose
from zapstack.node.engine.propose import Proposal
from zapstack.verify.executor import ChainBranch
from zapstack.zap.views import BlockView
from zapstack.zapdb import Branch

if TYPE_CHECKING:
    from zapstack.node.engine.core import Consensus

__all__ = ["Prebuild", "floors_after", "start", "take"]


@dataclass(slots=True)
class Prebuild:
    """One engine's pre-build state (owned by the event loop)."""

    target: tuple[int, bytes] | None = None
    """(height, parent id) of the pre-build in flight or ready."""
    task: asyncio.Task[None] | None = None
    """The job building it."""
    ready: Proposal | None = None
    """The block built for ``target``, not proposed yet."""


class _Fork:
    """A :class:`~zapstack.producer.BuildStore` whose one branch is a fork of a candidate."""

    def __init__(self, branch: ChainBranch[Any]) -> None:
        self._branch = branch

    def snapshot(self) -> ChainBranch[Any]:
        return self._branch

    def root(self) -> bytes:
        return self._branch.root()


def floors_after(block: BlockView) -> dict[bytes, int]:
    """Sender -> the nonce after its last tx in ``block``."""
    floors: dict[bytes, int] = {}
    for tx in block.txs():
        sender = bytes(tx.sender)
        floors[sender] = max(floors.get(sender, 0), tx.nonce + 1)
    return floors


def start(c: Consensus, parent: BlockView) -> None:
    """We voted for ``parent``: pre-build the next height's block if we propose it."""
    height = parent.height + 1
    if c.halted or c.g.proposer_of(height, 0) != c.me or (height, 0) in c.proposed:
        return
    st, target = c.prebuild, (height, parent.block_id)
    if st.target == target or (st.task is not None and not st.task.done()):
        return  # built (or building) already; one pre-build at a time
    st.target, st.ready = target, None
    n = propose.budget(c, height)
    st.task = c.spawn(_job(c, target, floors_after(parent), n))


async def _job(c: Consensus, target: tuple[int, bytes], floors: dict[bytes, int], n: int) -> None:
    built: Proposal | None = await c.io.run(_build, c, target, floors, n)
    if built is not None and c.prebuild.target == target and c.height <= target[0]:
        c.prebuild.ready = built
        c.stats["prebuilt"] += 1


def _build(
    c: Consensus, target: tuple[int, bytes], floors: dict[bytes, int], n: int
) -> Proposal | None:
    """Worker thread: fork the parent's candidate branch, build on it (None: it is gone)."""
    height, parent = target
    entry = c.executor._candidates.get(parent)  # one dict read: safe beside the loop
    if entry is None or not isinstance(entry[1], Branch):
        return None
    try:
        fork = entry[1].fork()  # under the branch's lock: never half of a commit
    except StoreError:  # committed or discarded meanwhile
        return None
    return propose.build(c, _Fork(fork), height, parent, n, floors)


async def take(c: Consensus, height: int, round_: int) -> Proposal | None:
    """The block pre-built for (height, round_) on the finalized head, or None."""
    st = c.prebuild
    if round_ != 0 or st.target != (height, c.executor.head):
        st.target, st.ready = None, None  # built on another block (or none): dropped
        return None
    if st.task is not None and not st.task.done():
        await asyncio.wait({st.task})  # nearly done: sooner than a build from scratch
    ready, st.target, st.ready = st.ready, None, None
    if ready is not None:
        c.stats["prebuilt_proposed"] += 1
    return ready
