"""``zap keys`` and ``zap tx send`` against a running node (the issue's must-show, part 1).

The tx's id and the key's account are recomputed here from the frame and the seed;
the inclusion height printed is checked against the block the node wrote."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from zapstack.cli.app import app
from zapstack.node.blockstore import BlockStore
from zapstack.zap import parse_block

runner = CliRunner()


def _zap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zapstack.cli", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_keys_new_and_show(tmp_path: Path) -> None:
    key = tmp_path / "k" / "key.json"
    made = runner.invoke(app, ["keys", "new", "--key", str(key), "--json"])
    assert made.exit_code == 0, made.output
    public = json.loads(made.output)
    doc = json.loads(key.read_text())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert doc["seed"] not in made.output  # the secret is never printed unasked
    from zapstack.zap import Signer, SigScheme

    pk = bytes(Signer(SigScheme.ED25519, bytes.fromhex(doc["seed"])).public_key)
    assert public["account"] == hashlib.sha256(pk).hexdigest() == doc["account"]
    shown = runner.invoke(app, ["keys", "show", "--key", str(key)])
    assert shown.exit_code == 0 and public["account"] in shown.output
    assert doc["seed"] not in shown.output
    secret = runner.invoke(app, ["keys", "show", "--key", str(key), "--secret", "--json"])
    assert json.loads(secret.output)["seed"] == doc["seed"]
    again = _zap("keys", "new", "--key", str(key))  # never overwrites silently
    assert again.returncode == 2 and again.stderr.startswith("error: ")
    assert len(again.stderr.splitlines()) == 1 and json.loads(key.read_text()) == doc


def test_tx_send_prints_the_answer_and_the_inclusion_height(api_chain: Any, tmp_path: Path) -> None:
    key = tmp_path / "user1.json"
    made = runner.invoke(app, ["keys", "new", "--key", str(key), "--devnet-user", "1",
                               "--genesis", str(api_chain.genesis_path)])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert hashlib.sha256(bytes(api_chain.user(1).public_key)).hexdigest() in made.output
    to = hashlib.sha256(b"test_wallet carol").hexdigest()
    sent = _zap("tx", "send", "--to", to, "--amount", "4321", "--fee", "7", "--key", str(key),
                "--node", api_chain.url)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    lines = sent.stdout.splitlines()
    assert lines[0].startswith("admission: NO_ERROR tx ")
    tx_id = lines[0].split()[3]
    assert lines[1].startswith("included at height ")
    height = int(lines[1].split()[3])
    block = BlockStore(api_chain.home / "blocks").block(height)
    assert block is not None
    txs = {t.tx_id.hex(): t for t in parse_block(block).txs()}
    assert tx_id in txs and txs[tx_id].amount == 4321 and txs[tx_id].recipient.hex() == to
    # --json: a second transfer (the next nonce, read from the API)
    sent = _zap("tx", "send", "--to", to, "--amount", "1", "--key", str(key),
                "--node", api_chain.url, "--json")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    doc = json.loads(sent.stdout)
    assert doc["answer"]["code"] == "NO_ERROR" and doc["nonce"] == 1
    assert doc["status"]["status"] == "included"


def test_a_rejected_send_exits_1_with_the_code(api_chain: Any, tmp_path: Path) -> None:
    key = tmp_path / "broke.json"
    assert runner.invoke(app, ["keys", "new", "--key", str(key)]).exit_code == 0  # unfunded
    sent = _zap("tx", "send", "--to", "00" * 32, "--amount", "5", "--key", str(key),
                "--node", api_chain.url)  # fmt: skip
    assert sent.returncode == 1 and "admission: INSUFFICIENT_BALANCE" in sent.stdout
    bad = _zap("tx", "send", "--to", "xyz", "--amount", "5", "--key", str(key))
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
