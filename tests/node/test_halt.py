"""Every fault halts the node cleanly: at its last committed block, reason in log and status.

* In process (a one-validator devnet, real QUIC endpoint): ZapDB's fault hook
  fails a commit; a cert-upgrade write fails with ENOSPC (the issue's case: an
  ``OSError``, not one of ours); a bug in a loop.  Each halts the node:
  ``serve`` returns, ``Node.fatal`` and ``status.json`` carry the reason, the
  log has ``halted at height``, ZapDB's head is the last committed block.
* A real full disk (a tmpfs mount for validator 0 of a 4-validator devnet,
  filled up): ``zap node`` exits 1 with one line, its log and ``status.json``
  say why; after space is freed the restarted node catches up with the others.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zapstack.devnet.processes import ProcessCluster, free_port_base, read_status
from zapstack.errors import FatalStoreError
from zapstack.node.blockstore import BlockStore
from zapstack.node.genesis import make_devnet
from zapstack.node.halt import RESERVE_FILE, describe
from zapstack.node.node import Node
from zapstack.verify.executor import HEAD_HEIGHT_META
from zapstack.zapdb import FailAt, ZapDB


def one_validator(tmp_path: Path) -> Path:
    return make_devnet(tmp_path / "net", 1, base_port=free_port_base(1), users=2)[0]


def run_until_fault(
    home: Path, inject: Callable[[Node], None], caplog: pytest.LogCaptureFixture
) -> tuple[Node, int]:
    """Serve until height 2, ``inject``, then until the node stops (bounded)."""

    async def main() -> tuple[Node, int]:
        node = Node(home)
        serving = asyncio.create_task(node.serve())
        try:
            async with asyncio.timeout(60):
                while node.executor.height < 2:
                    await asyncio.sleep(0.02)
                at = node.executor.height
                inject(node)
                await serving
        finally:
            node.stop()
            await asyncio.gather(serving, return_exceptions=True)
        return node, at

    with caplog.at_level(logging.INFO, logger="zapstack.node"):
        return asyncio.run(main())


def committed_height(home: Path) -> int:
    from zapstack.zapdb import ZapDB

    db = ZapDB.open(home / "db")
    try:
        raw = db.meta_get(HEAD_HEIGHT_META)
        return int.from_bytes(raw or bytes(8), "little")
    finally:
        db.close()


def assert_halted(home: Path, node: Node, caplog: pytest.LogCaptureFixture, reason: str) -> None:
    assert node.fatal is not None and reason in node.fatal
    status = json.loads((home / "status.json").read_text())
    assert status["halted"] is True and reason in status["fatal"]
    halted = [r for r in caplog.records if r.getMessage().startswith("halted at height")]
    assert len(halted) == 1 and halted[0].levelno == logging.ERROR
    assert reason in halted[0].getMessage()
    assert committed_height(home) == node.executor.height == status["height"]
    assert not (home / RESERVE_FILE).exists()  # freed for the halt record


def test_zapdb_fault_hook_halts_at_the_last_committed_block(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = one_validator(tmp_path)

    def fail_commits(node: Node) -> None:
        node.db._fault = FailAt(0, errno.EIO)  # the store's fault hook: the next commit fails

    node, at = run_until_fault(home, fail_commits, caplog)
    assert_halted(home, node, caplog, "injected")
    assert node.executor.height in (at, at + 1)  # a commit in flight may have landed first
    assert node.consensus.fatal is not None


def test_enospc_writing_a_cert_upgrade_halts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: an OSError (not a ZapError) from the cert upgrade write used to
    kill the consensus loop silently."""
    home = one_validator(tmp_path)

    def full_disk(self: BlockStore, height: int, cert: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def break_upgrades(node: Node) -> None:
        monkeypatch.setattr(BlockStore, "upgrade_cert", full_disk)

    node, _ = run_until_fault(home, break_upgrades, caplog)
    assert_halted(home, node, caplog, "No space left on device")
    assert "OSError" in (node.fatal or "")


def test_a_bug_in_any_loop_halts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = one_validator(tmp_path)

    def boom() -> None:
        raise RuntimeError("a bug")

    node, _ = run_until_fault(home, lambda n: setattr(n.txsvc, "tick", boom), caplog)
    assert_halted(home, node, caplog, "RuntimeError: a bug")
    assert "_tick_loop" in (node.fatal or "") or "_chain_loops" in (node.fatal or "")


def test_describe_is_one_line() -> None:
    assert describe(OSError(28, "No space\nleft")) == "OSError: [Errno 28] No space left"


def test_a_store_at_its_map_size_halts_with_what_to_do(tmp_path: Path) -> None:
    """A real LMDB map that fills: the commit fails (FatalStoreError, caused by LMDB's
    MapFullError), the store refuses writes after, and the halt reason says which option
    raises the bound; another error gets no such hint."""
    db = ZapDB.open(tmp_path / "db", map_size=1 << 20)
    try:
        txn = db.begin()
        for i in range(20_000):
            txn.set(b"k%08d" % i, bytes(64))
        with pytest.raises(FatalStoreError) as err:
            txn.commit()
        assert db.halted
    finally:
        db.close()
    line = describe(err.value)
    assert line.startswith("FatalStoreError: ZapDB write failed, txn discarded: ")
    assert "MDB_MAP_FULL" in line and line.endswith("restart with a larger --db-max-gib)")
    assert "--db-max-gib" not in describe(FatalStoreError("ZapDB write failed: EIO"))


# ------------------------------------------------------------------ a real full disk


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


def _fill(where: Path) -> Path:
    filler = where / "filler"
    with open(filler, "wb") as fh:
        chunk = bytes(1 << 16)
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _wait(
    predicate: Callable[[], Any],
    timeout: float,
    what: Callable[[], str],
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Wait until ``predicate``; fail with ``what()`` at ``timeout`` or as soon as ``stop``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline and not stop(), what()
        time.sleep(0.2)


@pytest.mark.slow
def test_real_full_disk_halts_cleanly_and_the_restart_catches_up(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    net = tmp_path / "net"
    disk = net / "node-0"
    _mount_tmpfs(disk, "64m")
    cluster: ProcessCluster | None = None
    try:
        homes = make_devnet(net, 4, base_port=free_port_base(4), users=8)
        cluster = ProcessCluster(homes)
        for i in range(4):
            cluster.start(i)
        up = cluster  # every validator must stay up while the devnet starts
        _wait(
            lambda: (
                all(up.alive(i) for i in range(4))
                and min(up.heights().values(), default=0) >= 2
                and len(up.heights()) == 4
            ),
            180,
            lambda: "devnet did not reach height 2:\n" + up.report(),
            stop=lambda: not all(up.alive(i) for i in range(4)),
        )
        filler = _fill(disk)
        proc = cluster.procs[0]
        _wait(
            lambda: proc.poll() is not None,
            60,
            lambda: "validator 0 did not halt on a full disk:\n" + cluster.report(),
        )
        assert proc.returncode == 1
        out = (disk / "stdout.txt").read_bytes().decode(errors="replace")
        assert out.count("error: node halted:") == 1 and "No space left on device" in out
        status = read_status(disk)
        assert status is not None and status["halted"] is True
        assert "No space left on device" in status["fatal"]
        logged = [json.loads(line) for line in (disk / "node.log").read_text().splitlines()]
        assert any(r["event"].startswith("halted at height") for r in logged)
        halted_at = int(status["height"])
        filler.unlink()  # the operator frees space and restarts it
        cluster.start(0)
        others = max(h for i, h in cluster.heights().items() if i != 0)
        _wait(
            lambda: (
                (read_status(disk) or {}).get("height", -1) >= others + 1
                and not (read_status(disk) or {}).get("halted")
            ),
            90,
            lambda: "validator 0 did not catch up after the restart:\n" + cluster.report(),
        )
        assert others >= halted_at
        records = [json.loads(line) for line in (disk / "node.log").read_text().splitlines()]
        caught = [r["event"] for r in records if r["event"].startswith("caught up ")]
        assert all("from validators [" in e for e in caught), caught
        if others >= halted_at + 2:  # one height behind is decided by the next FINAL itself
            assert any(int(e.split()[2]) >= 1 for e in caught), caught
    finally:
        if cluster is not None:
            cluster.stop()
        subprocess.run(["umount", "-l", str(disk)], check=False)
        shutil.rmtree(net, ignore_errors=True)
