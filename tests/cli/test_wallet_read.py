"""``zap account`` (the verified proof: the must-show, part 2), ``zap block``, ``zap status``,
``zap api-spec``, and an unreachable node, against a running node."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from zapstack.cli.wallet_read import status_text
from zapstack.node.blockstore import BlockStore
from zapstack.node.http.api_spec import OPS, openapi


def _zap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zapstack.cli", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_account_prints_a_proof_it_verified(api_chain: Any) -> None:
    api_chain.wait_height(1)
    acct = hashlib.sha256(bytes(api_chain.user(6).public_key)).hexdigest()
    run = _zap("account", acct, "--genesis", str(api_chain.genesis_path), "--node", api_chain.url)
    assert run.returncode == 0, run.stderr
    expected = api_chain.genesis.allocations[bytes.fromhex(acct)]  # untouched devnet user
    assert f"balance {expected}" in run.stdout and "nonce   0" in run.stdout
    assert "proof verified against cert at height" in run.stdout
    assert str(api_chain.genesis_path) in run.stdout
    own = _zap("account", acct, "--node", api_chain.url, "--json")  # genesis from the node
    doc = json.loads(own.stdout)
    assert doc["verified"] and doc["genesis"] == "the node's own /v1/genesis"
    assert doc["balance"] == expected


def test_block_and_status(api_chain: Any) -> None:
    api_chain.wait_height(2)
    block = _zap("block", "2", "--node", api_chain.url, "--json")
    raw = BlockStore(api_chain.home / "blocks").block(2)
    assert (
        raw is not None and json.loads(block.stdout)["block_id"] == hashlib.sha256(raw).hexdigest()
    )
    text = _zap("block", "2", "--node", api_chain.url)
    assert text.returncode == 0 and text.stdout.startswith("height 2  id ")
    status = json.loads(_zap("status", "--node", api_chain.url, "--json").stdout)
    assert status["chain_id"] == api_chain.genesis.chain_id and status["height"] >= 2


def test_status_text_prints_a_record_as_name_value_pairs() -> None:
    sync = {"target": 8, "chunks": 412, "of": 1024, "entries": 41200, "seconds": 20.0,
            "idle_s": 1.5}  # fmt: skip
    assert status_text({"height": 0, "catching_up": True, "state_sync": sync}) == (
        "height       0\n"
        "catching_up  True\n"
        "state_sync   target=8 chunks=412 of=1024 entries=41200 seconds=20.0 idle_s=1.5"
    )
    assert status_text({"state_sync": None}) == "state_sync   None"


def test_api_spec_writes_the_generated_document(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    assert _zap("api-spec", "--out", str(out)).returncode == 0
    assert json.loads(out.read_text()) == openapi(OPS)


def test_an_unreachable_node_is_one_line_exit_2() -> None:
    run = _zap("status", "--node", "http://127.0.0.1:9")
    assert run.returncode == 2 and run.stderr.startswith("error: node http://127.0.0.1:9")
    assert len(run.stderr.splitlines()) == 1
