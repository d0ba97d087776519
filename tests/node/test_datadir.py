"""The data folder's checks: usable, exclusively locked, bound to one chain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zapstack.errors import ConfigError
from zapstack.node.datadir import CHAIN_FILE, HomeLock, check_chain, check_home, record_chain
from zapstack.node.genesis import genesis_from_dict, load_genesis


def test_home_must_be_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        check_home(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        check_home(tmp_path / "f")
    check_home(tmp_path)


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    first = HomeLock(tmp_path)
    with pytest.raises(ConfigError, match="in use by another zap node"):
        HomeLock(tmp_path)
    first.release()
    first.release()  # idempotent
    HomeLock(tmp_path).release()
    assert list(tmp_path.iterdir()) == []  # taking the lock wrote nothing


def test_lock_is_exclusive_across_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from zapstack.node.datadir import HomeLock;"
        f"HomeLock(Path({str(tmp_path)!r})); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError):
            HomeLock(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    HomeLock(tmp_path).release()  # a killed holder leaves no stale lock


def test_chain_is_recorded_then_checked(devnet_home: Path, tmp_path: Path) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    assert check_chain(tmp_path, g) is True  # first start
    record_chain(tmp_path, g)
    raw = json.loads((tmp_path / CHAIN_FILE).read_text())
    assert raw == {"chain_id": g.chain_id, "genesis_id": g.genesis_id.hex()}
    assert check_chain(tmp_path, g) is False
    other_raw = dict(g.raw, block_interval_ms=g.block_interval_ms + 1)
    other = genesis_from_dict(other_raw)
    before = (tmp_path / CHAIN_FILE).read_bytes()
    with pytest.raises(ConfigError) as exc:
        check_chain(tmp_path, other)
    text = str(exc.value)
    assert g.genesis_id.hex()[:16] in text and other.genesis_id.hex()[:16] in text
    assert (tmp_path / CHAIN_FILE).read_bytes() == before


def test_unreadable_chain_file_is_an_error(devnet_home: Path, tmp_path: Path) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    (tmp_path / CHAIN_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match="chain is unknown"):
        check_chain(tmp_path, g)
