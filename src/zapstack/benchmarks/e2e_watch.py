"""What the end-to-end row reads off a running devnet and off its data dirs afterwards.

* :class:`Watcher` polls every validator's ``status.json`` (every
  ``POLL_S``) on the caller's event loop and keeps ``(time, height)``
  observations and each height's leg record (the aggregator's ``legs_ms``:
  ms after its round started when each leg aggregated).  An observation's
  time is the status file's modification time (converted to
  ``time.monotonic()``), read after the file: a node rewrites it every 250 ms,
  so a height is seen final 0-250 ms after it was.
* :func:`read_blocks` reads one stopped validator's block store: tx count per
  height and the height of every tx id.
* :func:`chains_agree` reads every stopped validator's data dir
  (:func:`~zapstack.devnet.soakcheck.read_chain`): each chain sound and all
  holding the same blocks up to the lowest head.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from zapstack.devnet.processes import read_status
from zapstack.devnet.soakcheck import read_chain
from zapstack.node.blockstore import BlockStore
from zapstack.node.genesis import Genesis
from zapstack.zap.frames import parse_block

__all__ = ["POLL_S", "Watcher", "chains_agree", "read_blocks"]

POLL_S = 0.05
"""Seconds between two polls of the status files."""


class Watcher:
    """Polls the validators' status files until stopped (see the module docstring)."""

    def __init__(self, homes: list[Path]) -> None:
        self.homes = homes
        self.observations: list[tuple[float, int]] = []
        """``(monotonic time, finalized height)`` per status read."""
        self.records: dict[int, dict[str, Any]] = {}
        """Height -> the aggregator's height record (the latest seen: late legs land)."""
        self.last: dict[int, dict[str, Any]] = {}
        """Validator index -> its latest status."""
        self.txs: dict[int, int] = {}
        """Height -> txs in its block (from any validator's record)."""

    def poll(self) -> None:
        """Read every status file once."""
        skew = time.time() - time.monotonic()
        for i, home in enumerate(self.homes):
            st = read_status(home)
            if st is None:
                continue
            try:
                written = os.stat(home / "status.json").st_mtime - skew
            except OSError:
                written = time.monotonic()
            self.last[i] = st
            self.observations.append((min(written, time.monotonic()), int(st["height"])))
            for rec in st.get("recent", []):
                self.txs[int(rec["height"])] = int(rec["txs"])
                if rec.get("legs_ms"):
                    self.records[int(rec["height"])] = rec

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every :data:`POLL_S` until ``stop`` is set."""
        while not stop.is_set():
            self.poll()
            await asyncio.sleep(POLL_S)

    def heights(self) -> list[int]:
        return [int(s["height"]) for s in self.last.values()]

    def agreed(self) -> bool:
        """All validators report one height, one head and one state root."""
        keys = {(s["height"], s["head"], s["state_root"]) for s in self.last.values()}
        return len(self.last) == len(self.homes) and len(keys) == 1

    def mempools(self) -> int:
        """Txs in every validator's mempool together (latest statuses)."""
        return sum(int(s.get("mempool", 0)) for s in self.last.values())


def read_blocks(
    home: Path, genesis: Genesis, height: int
) -> tuple[dict[int, int], dict[bytes, int]]:
    """(height -> tx count, tx id -> height) of a stopped node's blocks ``1..height``."""
    store = BlockStore(home / "blocks")
    counts: dict[int, int] = {}
    where: dict[bytes, int] = {}
    for h in range(1, height + 1):
        raw = store.block(h)
        if raw is None:
            break
        view = parse_block(raw, chain_id=genesis.chain_id)
        txs = list(view.txs())
        counts[h] = len(txs)
        for tx in txs:
            where[tx.tx_id] = h
    return counts, where


def chains_agree(homes: list[Path], genesis: Genesis) -> tuple[bool, int, list[str]]:
    """(all sound and equal up to the lowest head, that head, problems found)."""
    chains = [read_chain(h, genesis) for h in homes]
    problems = [f"node {i}: {p}" for i, c in enumerate(chains) for p in c.problems]
    low = min(c.height for c in chains)
    prefixes = {c.block_ids[:low] for c in chains}
    if len(prefixes) != 1:
        problems.append(f"validators hold different blocks below height {low}")
    return not problems, low, problems
