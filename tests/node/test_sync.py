"""The bootstrap pipeline in the running node, over real QUIC (qh3, 127.0.0.1).

A 4-validator devnet (separate processes) finalizes blocks under load; then
validator 3 is SIGKILLed, its data dir (ZapDB + block store) wiped, and it is
restarted with ``zap node --state-sync``: it downloads the state of a recent
finalized block in verified chunks from several peers, commits it, follows
the live blocks and votes again.  Every validator ends at the halt height with
the same head and state root, and the wiped one holds no block below its sync
target (it never replayed history)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from zapstack.devnet.loadgen import LoadGenerator
from zapstack.devnet.processes import free_port_base, read_status, spawn_node
from zapstack.node.genesis import load_genesis, make_devnet
from zapstack.transport.bindings import run_bounded

HALT = 9
WIPED = 3


def _wait(homes: list[Path], pred: Any, timeout: float) -> dict[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    statuses: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        statuses = {i: s for i, h in enumerate(homes) if (s := read_status(h)) is not None}
        if pred(statuses):
            return statuses
        time.sleep(0.2)
    raise AssertionError(f"devnet condition not reached in {timeout}s: {statuses}")


def _txs_final_at_height_3(st: dict[int, dict[str, Any]]) -> bool:
    """Every validator is at height >= 3 and some finalized block holds txs (the state
    then has entries beyond genesis: the proposers' fee accounts; the sync checks it)."""
    if len(st) < 4 or min(s["height"] for s in st.values()) < 3:
        return False
    return any(r["txs"] > 0 for s in st.values() for r in s["recent"])


def test_wiped_validator_state_syncs_follows_and_agrees(tmp_path: Path) -> None:
    base = free_port_base(4)
    homes = make_devnet(tmp_path / "net", 4, base_port=base)
    genesis = load_genesis(tmp_path / "net" / "genesis.json")
    procs: dict[int, subprocess.Popen[bytes]] = {}
    load = LoadGenerator(genesis, rate=80)
    stop = asyncio.Event()

    async def drive() -> None:
        # the load generator dials once: wait until every node is up and listening
        await asyncio.to_thread(_wait, homes, lambda st: len(st) == 4, 60)
        await load.connect()
        task = asyncio.create_task(load.run(stop))
        try:
            await asyncio.to_thread(_wait, homes, _txs_final_at_height_3, 60)
            # validator 3: killed, data dir wiped, restarted with --state-sync
            procs[WIPED].send_signal(signal.SIGKILL)
            procs[WIPED].wait(10)
            for sub in ("db", "blocks"):
                shutil.rmtree(homes[WIPED] / sub)
            (homes[WIPED] / "status.json").unlink(missing_ok=True)
            procs[WIPED] = spawn_node(homes[WIPED], halt_height=HALT, state_sync=True)
            await asyncio.to_thread(
                _wait, homes, lambda st: WIPED in st and st[WIPED]["sync"].get("chunks"), 60
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            await load.close()

    try:
        for i, h in enumerate(homes):
            procs[i] = spawn_node(h, halt_height=HALT)
        run_bounded(drive(), 130)
        final = _wait(homes, lambda st: len(st) == 4 and all(s["halted"] for s in st.values()), 90)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    sync = final[WIPED]["sync"]
    target = sync["height"]
    print(f"state sync: {sync}")
    assert target >= 3 and sync["chunks"] == 256 and sync["entries"] > 64
    assert {s["height"] for s in final.values()} == {HALT}
    assert len({s["state_root"] for s in final.values()}) == 1
    assert len({s["head"] for s in final.values()}) == 1
    blocks = homes[WIPED] / "blocks"
    held = sorted(int(p.stem) for p in blocks.glob("*.blk"))
    assert held[0] == target and held[-1] == HALT  # synced at target, followed the rest live
    assert not (blocks / f"{1:012d}.blk").exists() or target == 1
    assert sync["peers"] == 3 and sync["chunk_peers"] >= 2  # chunks came from several peers
