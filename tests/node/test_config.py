"""A node home's genesis lookup."""

from pathlib import Path

import pytest

from zapstack.errors import ZapError
from zapstack.node.config import find_genesis


def test_genesis_in_the_home_wins_over_its_parent(tmp_path: Path) -> None:
    home = tmp_path / "node-0"
    home.mkdir()
    (tmp_path / "genesis.json").write_text("{}")
    assert find_genesis(home) == tmp_path / "genesis.json"
    (home / "genesis.json").write_text("{}")
    assert find_genesis(home) == home / "genesis.json"


def test_no_genesis_names_the_home(tmp_path: Path) -> None:
    home = tmp_path / "node-0"
    home.mkdir()
    with pytest.raises(ZapError, match=r"no genesis\.json"):
        find_genesis(home)
