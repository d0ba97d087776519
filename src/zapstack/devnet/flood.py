"""A zero-funds flood against a live 4-validator devnet, while honest users keep sending.

What it does (issue 13's "must show"), in order:

1. Deals a devnet and starts its validators as ``zap node`` processes
   (:class:`~zapstack.devnet.processes.ProcessCluster`, no halt height).
2. Honest load: a :class:`~zapstack.devnet.loadgen.LoadGenerator` over the
   funded devnet users at ``honest_rate`` tx/s, for the whole run.
3. After ``warmup_s``: the flood, ``flood_txs`` distinct max-fee transfers from
   ``flood_senders`` unfunded accounts (consecutive nonces per account), each
   on its own TX_SUBMIT stream, ``concurrency`` in flight, round-robin over the
   validators; every answer's code is counted.
4. After the flood: ``after_s`` more seconds of honest load, then ``drain_s``
   with no load, then the validators stop.
5. Every finalized block of validator 0 is read back; an honest frame counts
   as *finalized* if its tx id is in one.  Frames are split by when they were
   first submitted: during the flood window, or after it.

Everything but the validators runs on the caller's event loop.  The
validators are SIGTERMed in a ``finally``.  :func:`run_flood` returns a
:class:`FloodResult`; ``make soak`` runs it (``tests/devnet/test_flood.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from zapstack.devnet.loadgen import LoadGenerator
from zapstack.devnet.processes import ProcessCluster, free_port_base
from zapstack.errors import ZapError
from zapstack.node.adapters.submit import submit_tx
from zapstack.node.blockstore import BlockStore
from zapstack.node.genesis import Genesis, load_genesis, make_devnet
from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Endpoint, Peer
from zapstack.transport.identity import NodeIdentity
from zapstack.zap.frames import build_transfer, parse_block, parse_tx
from zapstack.zap.sigschemes import Signer, SigScheme

__all__ = ["FloodResult", "run_flood"]

FLOOD_FEE = 10**12
"""The flood's fee: far above any honest fee (1..50), and unpayable."""


@dataclass(slots=True)
class FloodResult:
    """What one flood run measured."""

    flood_sent: int = 0
    """Flood txs answered or failed."""
    flood_codes: dict[str, int] = field(default_factory=dict)
    """Answer code -> count, over the flood (``failed``: no answer)."""
    flood_s: float = 0.0
    """Seconds the flood lasted."""
    during: tuple[int, int] = (0, 0)
    """Honest frames first sent during the flood: (finalized, sent)."""
    after: tuple[int, int] = (0, 0)
    """Honest frames first sent after it: (finalized, sent)."""
    height: int = 0
    """Validator 0's last finalized height."""
    honest_codes: dict[str, int] = field(default_factory=dict)
    """Honest rejections by code."""


async def _flood(
    peers: list[Peer], g: Genesis, txs: int, senders: int, concurrency: int
) -> Counter[str]:
    keys = [
        Signer(SigScheme.ED25519, hashlib.sha256(b"zero-funds flood %d" % i).digest())
        for i in range(senders)
    ]
    to = hashlib.sha256(b"flood sink").digest()
    codes: Counter[str] = Counter()
    counter = itertools.count()

    async def worker() -> None:
        while (i := next(counter)) < txs:
            frame = build_transfer(keys[i % senders], to, 1, FLOOD_FEE, i // senders, g.chain_id)
            try:
                codes[(await submit_tx(peers[i % len(peers)], frame)).code.name] += 1
            except ZapError:
                codes["failed"] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return codes


async def _dial_all(endpoint: Endpoint, g: Genesis, deadline: float) -> list[Peer]:
    peers: dict[int, Peer] = {}
    while len(peers) < len(g.addresses) and time.monotonic() < deadline:
        for a in g.addresses:
            if a.index not in peers:
                try:
                    peers[a.index] = await endpoint.dial(a.host, a.port, a.node_id)
                except (ZapError, OSError):
                    await asyncio.sleep(0.5)
    return [peers[i] for i in sorted(peers)]


def _finalized_ids(home: Path) -> tuple[set[bytes], int]:
    store, height = BlockStore(home / "node-0" / "blocks"), 0
    ids: set[bytes] = set()
    for h in itertools.count(1):
        block = store.block(h)
        if block is None:
            break
        height = h
        ids.update(tx.tx_id for tx in parse_block(block, verify_signatures=False).txs())
    return ids, height


def _tally(
    result: FloodResult, honest: LoadGenerator, window: tuple[float, float], home: Path
) -> None:
    ids, result.height = _finalized_ids(home)
    during, after = [0, 0], [0, 0]
    for frame, at in honest.sent_at.items():
        bucket = during if window[0] <= at < window[1] else after if at >= window[1] else None
        if bucket is not None:
            bucket[1] += 1
            bucket[0] += parse_tx(frame, verify_signatures=False).tx_id in ids
    result.during, result.after = (during[0], during[1]), (after[0], after[1])
    result.honest_codes = dict(honest.stats.rejected)


async def _drive(home: Path, g: Genesis, cfg: dict[str, float]) -> FloodResult:
    loop, result = asyncio.get_running_loop(), FloodResult()
    honest = LoadGenerator(g, users=int(cfg["honest_users"]), rate=cfg["honest_rate"])
    deadline = time.monotonic() + 60
    while len(honest.peers) < len(g.addresses) and time.monotonic() < deadline:
        await honest.connect()
        await asyncio.sleep(0.5)
    stop = asyncio.Event()
    honest_task = asyncio.create_task(honest.run(stop))
    endpoint = Endpoint(BINDINGS["qh3"](), NodeIdentity.generate(), {})
    try:
        peers = await _dial_all(endpoint, g, time.monotonic() + 30)
        await asyncio.sleep(cfg["warmup_s"])
        start = loop.time()
        codes = await _flood(
            peers, g, int(cfg["flood_txs"]), int(cfg["flood_senders"]), int(cfg["concurrency"])
        )
        end = loop.time()
        result.flood_codes, result.flood_sent = dict(codes), sum(codes.values())
        await asyncio.sleep(cfg["after_s"])
        stop.set()
        await asyncio.wait_for(honest_task, 15)
        await asyncio.sleep(cfg["drain_s"])
    finally:
        stop.set()
        await asyncio.wait_for(endpoint.close(), 5)
        await honest.close()
    result.flood_s = end - start
    _tally(result, honest, (start, end), home)
    return result


def run_flood(
    home: Path,
    *,
    flood_txs: int = 50_000,
    flood_senders: int = 200,
    concurrency: int = 256,
    honest_rate: float = 20.0,
    honest_users: int = 16,
    warmup_s: float = 5.0,
    after_s: float = 15.0,
    drain_s: float = 10.0,
) -> FloodResult:
    """Run the flood scenario (see the module docstring) in ``home`` (created)."""
    make_devnet(home, 4, base_port=free_port_base(4), users=honest_users)
    g = load_genesis(home / "genesis.json")
    cluster = ProcessCluster([home / f"node-{i}" for i in range(4)])
    cfg = {
        "flood_txs": flood_txs, "flood_senders": flood_senders, "concurrency": concurrency,
        "honest_rate": honest_rate, "honest_users": honest_users, "warmup_s": warmup_s,
        "after_s": after_s, "drain_s": drain_s,
    }  # fmt: skip
    try:
        for i in range(4):
            cluster.start(i)
        return asyncio.run(_drive(home, g, cfg))
    finally:
        cluster.stop()
