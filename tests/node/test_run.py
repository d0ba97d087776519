"""``zap node`` on a real data folder: clean stop, then damaged stores refused with one line.

A one-validator devnet runs to height 3 and is stopped with SIGTERM (exit 0,
``chain.json`` recorded).  Copies of its data folder are then damaged the way
disks and operators damage them; each start is refused with exit 2 and one
line on stderr -- never a SIGBUS, never a traceback.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest

from zapstack.devnet.processes import free_port_base, read_status
from zapstack.errors import ConfigError
from zapstack.node.datadir import CHAIN_FILE
from zapstack.node.genesis import make_devnet
from zapstack.node.run import check_ports, settle_heap


def zap_node(home: Path) -> list[str]:
    return [sys.executable, "-m", "zapstack.cli", "node", "--home", str(home)]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-validator devnet's folder after a run to height >= 3 and a SIGTERM."""
    net = tmp_path_factory.mktemp("run") / "net"
    home = make_devnet(net, 1, base_port=free_port_base(1), users=2)[0]
    proc = subprocess.Popen(zap_node(home), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while ((read_status(home) or {}).get("height", 0)) < 3:
            assert time.monotonic() < deadline and proc.poll() is None, "node did not reach 3"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err == ""
    return net


def blk(home: Path, height: int, ext: str = "blk") -> Path:
    return home / "blocks" / f"{height:012d}.{ext}"


def head_height(home: Path) -> int:
    return int(json.loads((home / "status.json").read_text())["height"])


def truncate_db(home: Path) -> None:
    data = home / "db" / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)


def flip_head_block(home: Path) -> None:
    p = blk(home, head_height(home))
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 1
    p.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (truncate_db, "data.mdb is truncated"),
        (lambda h: (h / "db" / "data.mdb").write_bytes(bytes(8192)), "not an LMDB file"),
        (lambda h: blk(h, 2).unlink(), "000000000002.blk is missing"),
        (lambda h: blk(h, 1, "qc").unlink(), "000000000001.qc is missing"),
        (flip_head_block, "is corrupt"),
    ],
    ids=["truncated data.mdb", "zeroed data.mdb", "missing block", "missing cert", "bit flip"],
)
def test_a_damaged_store_is_refused_with_one_line(
    stopped: Path, tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    net = tmp_path / "net"
    shutil.copytree(stopped, net)
    home = net / "node-0"
    damage(home)
    proc = subprocess.run(zap_node(home), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr  # not -SIGBUS
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_the_intact_store_restarts_on_its_chain(stopped: Path, tmp_path: Path) -> None:
    net = tmp_path / "net"
    shutil.copytree(stopped, net)
    home = net / "node-0"
    chain = json.loads((home / CHAIN_FILE).read_text())
    assert set(chain) == {"chain_id", "genesis_id"}
    before = head_height(home)
    (home / "status.json").unlink()
    proc = subprocess.Popen(zap_node(home), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while ((read_status(home) or {}).get("height", -1)) <= before:
            assert time.monotonic() < deadline and proc.poll() is None, "no progress"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert json.loads((home / CHAIN_FILE).read_text()) == chain


def test_check_ports_names_the_busy_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=f"UDP port 127.0.0.1:{port} is not available"):
            check_ports("127.0.0.1", port)
    with pytest.raises(ConfigError, match="cannot resolve"):
        check_ports("no-such-host.invalid", 1)


def test_settle_heap_collects_then_freezes_what_is_left() -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    garbage = weakref.ref(Cycle())  # start-up garbage: a cycle only the collector frees
    gc.unfreeze()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert garbage() is None  # collected first, not frozen
        assert len(gc.get_objects()) < gc.get_freeze_count()  # the rest is frozen
    finally:
        gc.unfreeze()
