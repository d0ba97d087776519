"""The soak's record and its offline checks of the validators' data dirs.

* :func:`read_chain` opens one node's ZapDB and block store while the node is
  not running and checks them: blocks ``1..head`` present, linked by parent id,
  hashing to their certs' block ids, the state root equal to the head block's
  certified post-state root (:class:`ChainRead`);
* :class:`Restart` and :class:`SoakResult` record one soak (``zap soak``);
* :func:`final_checks` reads every data dir after the soak (all nodes stopped)
  and appends a *violation* to the result for each broken promise: a node's
  chain unsound, two nodes holding different blocks at a height both have, a
  killed node that lost committed blocks or never caught up, a chain that did
  not advance after the last restart, a malicious tx frame never stopped or a
  malicious consensus stream never refused (stopped or its connection cut).

Everything here is synchronous file IO; the data dirs must not be written
while they are read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from zapstack.consensus import cert as cert_mod
from zapstack.devnet.malicious import MaliciousStats
from zapstack.errors import ZapError
from zapstack.node.blockstore import BlockStore
from zapstack.node.genesis import Genesis
from zapstack.verify.executor import HEAD_HEIGHT_META, HEAD_ID_META
from zapstack.zap.frames import parse_block
from zapstack.zapdb import ZapDB

__all__ = ["ChainRead", "Restart", "SoakResult", "final_checks", "read_chain"]


@dataclass(frozen=True, slots=True)
class ChainRead:
    """What one node's data dir holds, read while the node is not running."""

    height: int
    """ZapDB's committed head height."""
    root: bytes
    """ZapDB's committed state root."""
    block_ids: tuple[bytes, ...]
    """sha256 of the stored block at heights 1..height."""
    problems: tuple[str, ...]
    """Missing blocks, broken links, cert / root mismatches (empty when sound)."""


def read_chain(home: Path, genesis: Genesis) -> ChainRead:
    """Open ``home``'s ZapDB and block store (node stopped) and check them."""
    problems: list[str] = []
    try:
        db = ZapDB.open(home / "db")
    except ZapError as exc:
        return ChainRead(0, b"", (), (f"ZapDB does not open: {exc}",))
    try:
        raw = db.meta_get(HEAD_HEIGHT_META)
        height = int.from_bytes(raw, "little") if raw else 0
        head = db.meta_get(HEAD_ID_META) or genesis.genesis_id
        root = db.root()
    finally:
        db.close()
    store = BlockStore(home / "blocks")
    ids: list[bytes] = []
    parent, state_root = genesis.genesis_id, b""
    for h in range(1, height + 1):
        block, cert = store.block(h), store.cert(h)
        if block is None or cert is None:
            problems.append(f"height {h}: block or cert missing")
            break
        bid = hashlib.sha256(block).digest()
        view = parse_block(block, chain_id=genesis.chain_id)
        if cert_mod.decode(cert).block_id != bid or view.height != h or view.parent != parent:
            problems.append(f"height {h}: block does not match its cert or parent")
        ids.append(bid)
        parent, state_root = bid, view.state_root
    if height and len(ids) == height:
        if parent != head:
            problems.append(f"head id {head.hex()[:16]} is not block {height}")
        if state_root != root:
            problems.append(f"state root {root.hex()[:16]} != block {height}'s post-state root")
    return ChainRead(height, root, tuple(ids), tuple(problems))


@dataclass(slots=True)
class Restart:
    """One kill / restart cycle of the victim validator."""

    victim: int
    killed_at_s: float
    """Seconds into the soak when it was SIGKILLed."""
    pre_kill: ChainRead
    """Its data dir read while it was dead."""
    target: int = 0
    """The others' height when it was restarted (it must reach it)."""
    caught_up_s: float | None = None
    """Seconds from restart until it reached ``target`` (None: never)."""


@dataclass(slots=True)
class SoakResult:
    """Outcome of one soak."""

    seconds: float = 0.0
    heights: dict[int, int] = field(default_factory=dict)
    """Committed head height per validator (read offline at the end)."""
    common_height: int = 0
    """The lowest head: every validator holds the same blocks up to it."""
    common_root: str = ""
    """The certified post-state root at ``common_height`` (all agree on it)."""
    restarts: list[Restart] = field(default_factory=list)
    load: dict[str, int] = field(default_factory=dict)
    malicious: MaliciousStats = field(default_factory=MaliciousStats)
    rejects: dict[str, int] = field(default_factory=dict)
    """Tx streams rejected by stage, summed over the validators."""
    txs_finalized: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def final_checks(homes: list[Path], g: Genesis, result: SoakResult) -> None:
    """Read every data dir (all nodes stopped) and record violations in ``result``."""
    chains = {i: read_chain(h, g) for i, h in enumerate(homes)}
    bad = result.violations.append
    for i, c in chains.items():
        for problem in c.problems:
            bad(f"validator {i}: {problem}")
    result.heights = {i: c.height for i, c in chains.items()}
    result.common_height = min(result.heights.values())
    _check_agreement(chains, result)
    _count_common_chain(BlockStore(homes[0] / "blocks"), result)
    _check_restarts(chains, result)
    m = result.malicious
    if not m.stopped.get("tx frame"):
        bad("no malformed tx frame stream of the malicious peer was stopped")
    if not m.refused("consensus type"):
        bad("no consensus stream of the malicious (non-validator) peer was refused")


def _check_agreement(chains: dict[int, ChainRead], result: SoakResult) -> None:
    """Every validator holds the same block at each height up to the common one."""
    for h in range(result.common_height):
        if len({c.block_ids[h] for c in chains.values() if len(c.block_ids) > h}) != 1:
            result.violations.append(f"validators hold different blocks at height {h + 1}")


def _count_common_chain(store: BlockStore, result: SoakResult) -> None:
    """Txs finalized up to the common height and the state root there, from one store."""
    common = result.common_height
    for h in range(1, common + 1):
        block = store.block(h)
        if block is not None:
            view = parse_block(block)
            result.txs_finalized += view.tx_count
            if h == common:
                result.common_root = view.state_root.hex()


def _check_restarts(chains: dict[int, ChainRead], result: SoakResult) -> None:
    """Each killed validator kept its pre-kill chain, caught up, and the chain went on."""
    bad = result.violations.append
    for r in result.restarts:
        final = chains[r.victim]
        for problem in r.pre_kill.problems:
            bad(f"validator {r.victim} before its restart: {problem}")
        kept = final.block_ids[: len(r.pre_kill.block_ids)]
        if final.height < r.pre_kill.height or kept != r.pre_kill.block_ids:
            bad(f"validator {r.victim} lost committed blocks across its restart")
        if r.caught_up_s is None:
            bad(f"validator {r.victim} did not catch up to height {r.target} after its restart")
    common = result.common_height
    if result.restarts and common <= result.restarts[-1].target:
        bad(f"the chain did not advance after the last restart (common height {common})")
