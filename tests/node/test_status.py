"""The status record a node publishes, and its atomic file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from zapstack.node.node import Node
from zapstack.node.status import node_status, write_status


def test_write_status_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_status(path, {"height": 1})
    write_status(path, {"height": 2, "peers": [1]})
    assert json.loads(path.read_text()) == {"height": 2, "peers": [1]}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp file left


def test_a_fresh_node_reports_genesis(devnet_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "node-2"
    shutil.copytree(devnet_home / "node-2", home)
    shutil.copy(devnet_home / "genesis.json", tmp_path / "genesis.json")
    node = Node(home)
    try:
        status = node_status(node)
        assert node.status().keys() == status.keys()
    finally:
        node.close()
    assert status["index"] == 2 and status["height"] == 0 and status["round"] == 0
    assert status["head"] == node.g.genesis_id.hex()
    assert status["peers"] == [] and status["recent"] == [] and status["sync"] == {}
    assert status["mempool"] == 0 and status["admitted"] == 0
    assert not status["halted"] and status["fatal"] is None
    assert status["dht"] == {"contacts": 0, "provided": 0} and status["pushes"] == 0
    json.dumps(status)  # JSON-ready as is
