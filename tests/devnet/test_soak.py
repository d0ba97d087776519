"""``zap soak``, short and bounded: a real devnet with load, a SIGKILLed and restarted
validator and a malicious peer; nothing committed is lost and everyone agrees."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.console import Console

from zapstack.devnet.soak import run_soak
from zapstack.devnet.soakcheck import read_chain
from zapstack.node.genesis import load_genesis


@pytest.mark.soak
def test_soak_kill_restart_malicious_peer_nothing_lost(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with open(out, "w") as fh:
        result = run_soak(24, 4, home=tmp_path / "net", console=Console(file=fh, width=120))
    text = out.read_text()
    assert result.ok, (result.violations, text)
    assert len(result.restarts) == 1
    restart = result.restarts[0]
    assert restart.victim == 3 and restart.pre_kill.height >= 2 and not restart.pre_kill.problems
    assert restart.caught_up_s is not None  # it rejoined ...
    assert result.heights[3] >= restart.target  # ... and kept up
    assert result.common_height > restart.target  # the chain went on after the restart
    assert len(result.common_root) == 64 and "soak of 4 validators: OK" in text
    m = result.malicious
    assert m.stopped["tx frame"] > 0 and m.refused("consensus type") > 0
    assert sum(result.rejects.values()) > 0 and result.txs_finalized > 0

    # the offline check is not vacuous: a lost block or a foreign state is caught
    g = load_genesis(tmp_path / "net" / "genesis.json")
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "net" / "node-1", damaged)
    assert read_chain(damaged, g).problems == ()
    (damaged / "blocks" / f"{2:012d}.blk").unlink()
    assert any("height 2" in p for p in read_chain(damaged, g).problems)
    shutil.rmtree(damaged / "db")
    shutil.copytree(tmp_path / "net" / "node-1" / "db", damaged / "db")
    shutil.copy(tmp_path / "net" / "node-2" / "blocks" / f"{2:012d}.blk", damaged / "blocks")
    (damaged / "blocks" / f"{1:012d}.qc").write_bytes(
        (tmp_path / "net" / "node-1" / "blocks" / f"{2:012d}.qc").read_bytes()
    )
    assert any("height 1" in p for p in read_chain(damaged, g).problems)
