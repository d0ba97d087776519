"""The main job end to end: validator processes over real QUIC on loopback."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from zapstack.devnet.devnet import run_devnet


def test_devnet_finalizes_agrees_and_light_client_verifies(tmp_path: Path) -> None:
    console = Console(file=open(tmp_path / "out.txt", "w"), width=120)  # noqa: SIM115
    result = run_devnet(
        4,
        8,
        home=tmp_path / "net",
        rate=100,
        malformed_every=10,
        timeout_s=180,
        live=False,
        console=console,
    )
    assert result.agreed, (result.roots, result.heads, (tmp_path / "out.txt").read_text())
    assert result.height == 8
    assert result.light_client_ok == 8 and result.light_client_failed == 0
    assert result.txs_finalized > 0
    # the malformed streams were rejected at their stages, not admitted
    assert sum(result.rejects.values()) >= result.load["malformed"] > 0
    assert result.ok
    # Issue 18: an ordinary run (connects, disconnects, the light client, the malformed
    # streams refused) pages nobody: no node.log line at WARNING or above, read here
    # with json on its own; and no traceback on any node's stdout/stderr.
    for home in sorted((tmp_path / "net").glob("node-*")):
        records = [json.loads(line) for line in (home / "node.log").read_text().splitlines()]
        assert records, home
        loud = [r for r in records if r["level"].upper() in ("WARNING", "ERROR", "CRITICAL")]
        assert loud == [], (home.name, loud[:5])
        assert "Traceback" not in (home / "stdout.txt").read_text(errors="replace")
    assert result.log_alerts == {0: [], 1: [], 2: [], 3: []}


def test_devnet_policy_deadline_grows_with_validators() -> None:
    from zapstack.consensus.policy import parse_policy
    from zapstack.devnet.devnet import devnet_policy

    assert devnet_policy(4)["TimeoutMs"] == 3000
    assert devnet_policy(40)["TimeoutMs"] == 8000
    parse_policy(devnet_policy(40))  # still a well-formed policy
