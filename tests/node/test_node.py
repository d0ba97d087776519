"""The Node's construction: its options reach the parts that use them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zapstack.bootstrap.server import HOLD_PINS
from zapstack.node.config import DB_MAX_GIB
from zapstack.node.node import Node


@pytest.mark.parametrize("hold", [None, 1, 5000])
def test_state_hold_blocks_reaches_the_bootstrap_server(
    devnet_home: Path, tmp_path: Path, hold: int | None
) -> None:
    home = tmp_path / "node-1"
    shutil.copytree(devnet_home / "node-1", home)
    shutil.copy(devnet_home / "genesis.json", tmp_path / "genesis.json")
    node = Node(home) if hold is None else Node(home, state_hold_blocks=hold)
    try:
        assert node.boot.hold_pins == (HOLD_PINS if hold is None else hold)
    finally:
        node.close()


@pytest.mark.parametrize("gib", [None, 2, 4096])
def test_db_max_gib_is_the_state_stores_map_size(
    devnet_home: Path, tmp_path: Path, gib: int | None
) -> None:
    home = tmp_path / "node-1"
    shutil.copytree(devnet_home / "node-1", home)
    shutil.copy(devnet_home / "genesis.json", tmp_path / "genesis.json")
    node = Node(home) if gib is None else Node(home, db_max_gib=gib)
    try:
        want = (DB_MAX_GIB if gib is None else gib) << 30
        assert node.db._env.info()["map_size"] == want
    finally:
        node.close()
