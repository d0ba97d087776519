"""Damaged block files of a validator are re-fetched from the others at its start.

A 4-validator devnet runs to height 4; validator 0 is stopped, and its block
files are damaged (a block deleted, a cert deleted, a bit flipped in a cert).
Restarted, it re-fetches exactly those heights through the light-client path
(certs over HEADER_RANGE, blocks through the DHT), rewrites them, starts and
keeps up with the others.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zapstack.consensus import cert as cert_mod
from zapstack.devnet.processes import ProcessCluster, free_port_base, read_status
from zapstack.node.blockstore import BlockStore
from zapstack.node.genesis import load_genesis, make_devnet


def wait(predicate: Callable[[], Any], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what()
        time.sleep(0.2)


@pytest.mark.slow
def test_damaged_block_files_are_refetched_from_peers(tmp_path: Path) -> None:
    homes = make_devnet(tmp_path / "net", 4, base_port=free_port_base(4), users=8)
    g = load_genesis(tmp_path / "net" / "genesis.json")
    cluster = ProcessCluster(homes)
    try:
        for i in range(4):
            cluster.start(i)
        wait(
            lambda: len(cluster.heights()) == 4 and min(cluster.heights().values()) >= 4,
            120,
            lambda: "devnet did not reach height 4:\n" + cluster.report(),
        )
        cluster.kill(0, signal.SIGTERM)
        blocks = homes[0] / "blocks"
        (blocks / f"{2:012d}.blk").unlink()
        (blocks / f"{1:012d}.qc").unlink()
        qc3 = blocks / f"{3:012d}.qc"
        raw = bytearray(qc3.read_bytes())
        raw[-5] ^= 0x10
        qc3.write_bytes(bytes(raw))
        stopped_at = int((read_status(homes[0]) or {})["height"])
        (homes[0] / "status.json").unlink()
        cluster.start(0)
        wait(
            lambda: (read_status(homes[0]) or {}).get("height", -1) > stopped_at,
            120,
            lambda: "validator 0 did not start and advance after the repair:\n" + cluster.report(),
        )
        assert cluster.alive(0)
        mine, theirs = BlockStore(blocks), BlockStore(homes[1] / "blocks")
        for h in (1, 2, 3):
            block, cert = mine.block(h), mine.cert(h)
            assert block is not None and block == theirs.block(h)
            assert cert is not None
            cert_mod.verify_cert(cert_mod.decode(cert), g.vset, block_bytes=block)
        log = [json.loads(line) for line in (homes[0] / "node.log").read_text().splitlines()]
        assert any(
            r["event"] == "re-fetched the block files of heights [1, 2, 3] from peers" for r in log
        )
    finally:
        cluster.stop()
