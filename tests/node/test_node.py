"""The Node's construction: its options reach the parts that use them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from zapstack.bootstrap.server import HOLD_PINS
from zapstack.node.config import DB_MAX_GIB
from zapstack.node.node import Node


@contextmanager
def _built(devnet_home: Path, tmp_path: Path, **options: Any) -> Iterator[Node]:
    """Validator 1 of the devnet, in a home of its own, built with ``options``; closed after."""
    home = tmp_path / "node-1"
    shutil.copytree(devnet_home / "node-1", home)
    shutil.copy(devnet_home / "genesis.json", tmp_path / "genesis.json")
    node = Node(home, **options)
    try:
        yield node
    finally:
        node.close()


@pytest.mark.parametrize("hold", [None, 1, 5000])
def test_state_hold_blocks_reaches_the_bootstrap_server(
    devnet_home: Path, tmp_path: Path, hold: int | None
) -> None:
    options = {} if hold is None else {"state_hold_blocks": hold}
    with _built(devnet_home, tmp_path, **options) as node:
        assert node.boot.hold_pins == (HOLD_PINS if hold is None else hold)


@pytest.mark.parametrize("gib", [None, 2, 4096])
def test_db_max_gib_is_the_state_stores_map_size(
    devnet_home: Path, tmp_path: Path, gib: int | None
) -> None:
    options = {} if gib is None else {"db_max_gib": gib}
    with _built(devnet_home, tmp_path, **options) as node:
        assert node.db._env.info()["map_size"] == (DB_MAX_GIB if gib is None else gib) << 30


def test_the_validators_come_first_in_state_serving(devnet_home: Path, tmp_path: Path) -> None:
    with _built(devnet_home, tmp_path) as node:
        validators = {a.node_id for a in node.g.addresses}
        assert node.serving.queue.priority == validators and len(validators) == node.g.vset.n
