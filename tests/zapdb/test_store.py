"""ZapDB durability, isolation and failure behaviour: faults, SIGKILL, bank invariant."""

from __future__ import annotations

import errno
import importlib.util
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from zapstack.errors import ConflictError, FatalStoreError, StoreError
from zapstack.zapdb import FailAt, ZapDB, reference_root

WRITER = Path(__file__).with_name("crash_writer.py")


def _load_writer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("zapdb_crash_writer", WRITER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cw = _load_writer()


def _contents(db: ZapDB) -> dict[bytes, bytes]:
    with db.read() as view:
        return dict(view.iterate())


def _commit(db: ZapDB, writes: dict[bytes, bytes | None]) -> bytes:
    with db.begin() as txn:
        for k, v in writes.items():
            txn.delete(k) if v is None else txn.set(k, v)
        return txn.commit()


def test_reopen_keeps_data_root_version_and_meta(tmp_path: Path) -> None:
    db = ZapDB.open(tmp_path / "db", map_size=1 << 24)
    with db.begin() as txn:
        txn.set(b"a", b"1")
        txn.meta_set(b"height", b"7")
        txn.commit()
    _commit(db, {b"b": b"2", b"a": None})
    root = db.root()
    db.close()
    db.close()  # idempotent
    with pytest.raises(StoreError):
        db.read()
    db = ZapDB.open(tmp_path / "db", map_size=1 << 24)
    assert db.version == 2 and db.root() == root == reference_root({b"b": b"2"})
    assert db.meta_get(b"height") == b"7" and db.meta_get(b"nope") is None
    assert _contents(db) == {b"b": b"2"}
    db.close()


def test_read_view_is_a_stable_snapshot(db: ZapDB) -> None:
    _commit(db, {b"a": b"1"})
    view = db.read()
    _commit(db, {b"a": b"2", b"b": b"3"})
    assert view.get(b"a") == b"1" and view.get(b"b") is None
    assert view.root() == reference_root({b"a": b"1"}) and view.version == 1
    with db.read() as now:
        assert now.get(b"a") == b"2" and now.version == 2
    view.close()
    with pytest.raises(StoreError):
        view.get(b"a")
    assert db.snapshot_refs() == 0


@pytest.mark.parametrize(
    "at,ops,err",
    [
        (0, None, errno.ENOSPC),
        (30, None, errno.EIO),
        (0, frozenset({"node_put"}), errno.EIO),
        (0, frozenset({"meta"}), errno.ENOSPC),
        (0, frozenset({"commit"}), errno.EIO),
    ],
)
def test_injected_write_fault_discards_and_halts(
    tmp_path: Path, at: int, ops: frozenset[str] | None, err: int
) -> None:
    fault = FailAt(at, err, ops)
    fault.armed = False
    db = ZapDB.open(tmp_path / "db", map_size=1 << 24, fault_injector=fault)
    good = {b"k%d" % i: b"v%d" % i for i in range(40)}
    _commit(db, dict(good))
    root = db.root()
    fault.armed = True
    txn = db.begin()
    for i in range(60):
        txn.set(b"k%d" % i, b"new")
    with pytest.raises(FatalStoreError) as info:
        txn.commit()
    assert fault.fired == 1 and info.value.__cause__ is not None
    assert txn.state == "discarded"
    assert db.halted and db.root() == root and db.version == 1
    assert _contents(db) == good  # last committed state intact and readable
    for start in (db.begin, db.snapshot):
        with pytest.raises(FatalStoreError):
            start()
    db.close()
    db = ZapDB.open(tmp_path / "db", map_size=1 << 24)  # operator restarts the node
    assert _contents(db) == good and db.root() == root and not db.halted
    _commit(db, {b"after": b"restart"})
    assert db.root() == reference_root({**good, b"after": b"restart"})
    db.close()


def test_real_map_full_is_fatal_and_harmless(tmp_path: Path) -> None:
    db = ZapDB.open(tmp_path / "db", map_size=1 << 20)
    _commit(db, {b"small": b"x"})
    with pytest.raises(FatalStoreError):
        _commit(db, {b"big%d" % i: os.urandom(4000) for i in range(400)})
    assert _contents(db) == {b"small": b"x"} and db.halted
    db.close()


def test_no_half_state_is_ever_observable(db: ZapDB) -> None:
    keys = [b"k%02d" % i for i in range(40)]
    _commit(db, dict.fromkeys(keys, b"0"))
    stop = threading.Event()
    bad: list[set[bytes]] = []
    seen = [0]

    def reader() -> None:
        while not stop.is_set():
            with db.read() as view:
                values = {view.get(k) or b"" for k in keys}
                if len(values) != 1 or view.root() != reference_root(dict(view.iterate())):
                    bad.append(values)
                seen[0] += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for height in range(1, 40):
        _commit(db, dict.fromkeys(keys, b"%d" % height))
    stop.set()
    for t in threads:
        t.join()
    assert not bad and seen[0] > 0


def _spawn(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(WRITER), *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _kill(proc: subprocess.Popen[str], after: float) -> None:
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _replay(height: int) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for h in range(1, height + 1):
        for key, value in cw.block_writes(h):
            state.pop(key, None) if value is None else state.__setitem__(key, value)
    return state


def test_sigkill_mid_commit_leaves_a_committed_prefix(tmp_path: Path) -> None:
    iters = int(os.environ.get("ZAPDB_CRASH_ITERS", "6"))
    rng = random.Random(0xC0FFEE)
    path = str(tmp_path / "db")
    heights = []
    for _ in range(iters):
        _kill(_spawn("blocks", path), rng.uniform(0.02, 0.2))
        db = ZapDB.open(path, map_size=1 << 28)
        try:
            height = db.version
            if height:
                assert db.meta_get(b"height") == b"%d" % height
            assert _contents(db) == _replay(height)
            assert db.root() == reference_root(_replay(height))
            with db.read() as view:
                assert view.tree_root() == db.root()
        finally:
            db.close()
        heights.append(height)
    print("heights at each kill:", heights)
    assert heights == sorted(heights) and heights[-1] > 0


# ------------------------------------------------------------------ bank


def _total(db: ZapDB) -> int:
    with db.read() as view:
        return sum(int(view.get(cw.account(i)) or b"0") for i in range(cw.ACCOUNTS))


def test_bank_total_constant_across_threads_conflicts_and_restarts(tmp_path: Path) -> None:
    path = tmp_path / "bank"
    total = cw.ACCOUNTS * cw.START_BALANCE
    db = ZapDB.open(path, map_size=1 << 26)
    _commit(db, {cw.account(i): b"%d" % cw.START_BALANCE for i in range(cw.ACCOUNTS)})
    stop = threading.Event()
    wrong: list[int] = []
    stats = {"ok": 0, "conflict": 0}

    def auditor() -> None:
        while not stop.is_set():
            t = _total(db)
            if t != total:
                wrong.append(t)

    def teller(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            br: Any = db.snapshot()
            try:
                with br.tx() as scope:
                    cw.transfer(br, rng)
                if rng.random() < 0.2:  # the executor rejects this tx: per-tx rollback
                    assert scope.diff is not None and br.rollback(scope.diff)
                cw.transfer(br, rng)
                if rng.random() < 0.1:
                    br.discard()  # speculative loser
                    continue
                br.commit()
                stats["ok"] += 1
            except ConflictError:
                stats["conflict"] += 1
            finally:
                br.discard()

    threads = [threading.Thread(target=auditor)] + [
        threading.Thread(target=teller, args=(s,)) for s in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    stop.set()
    threads[0].join()
    assert not wrong and _total(db) == total and stats["ok"] > 0
    assert db.snapshot_refs() == 0
    db.close()
    for seed in range(3):  # restarts, each ending in SIGKILL mid-transfer
        _kill(_spawn("bank", str(path), str(seed)), 0.05 + 0.05 * seed)
        db = ZapDB.open(path, map_size=1 << 26)
        assert _total(db) == total
        assert db.root() == reference_root(_contents(db))
        db.close()


# ----------------------------------------------------- file checks before mapping

_OPEN_AND_READ = """
import sys
from zapstack.errors import FatalStoreError
from zapstack.zapdb import ZapDB
try:
    db = ZapDB.open(sys.argv[1], map_size=1 << 26)
    with db.read() as view:
        print(len(dict(view.iterate())))
except FatalStoreError as exc:
    print("refused:", exc)
"""

_RAW_LMDB_READ = """
import sys, lmdb
env = lmdb.open(sys.argv[1], map_size=1 << 26, max_dbs=3)
dbs = [env.open_db(name) for name in (b"data", b"nodes", b"meta")]
with env.begin() as txn:
    print(sum(len(v) for _, v in txn.cursor(db=dbs[0])))
    print(sum(len(v) for db in dbs[1:] for _, v in txn.cursor(db=db)))
"""


def _filled_store(path: Path, commits: int = 40) -> int:
    db = ZapDB.open(path, map_size=1 << 26)
    rng = random.Random(7)
    for c in range(commits):
        _commit(db, {f"{c}/{i}".encode(): rng.randbytes(300) for i in range(40)})
    db.close()
    return (path / "data.mdb").stat().st_size


def _run(code: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("keep", [0.5, 0.97, 3 * 4096 // 2, 100, 0])
def test_truncated_data_file_is_a_clear_error_not_sigbus(tmp_path: Path, keep: float) -> None:
    """A truncated ``data.mdb`` kills a plain LMDB reader with SIGBUS; ZapDB.open refuses it
    with one line before mapping it."""
    size = _filled_store(tmp_path / "db")
    assert _run(_OPEN_AND_READ, tmp_path / "db").stdout.strip() == str(40 * 40)
    cut = int(size * keep) if keep < 1 else int(keep)
    os.truncate(tmp_path / "db" / "data.mdb", cut)
    result = _run(_OPEN_AND_READ, tmp_path / "db")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: ")
    assert "truncated" in result.stdout or "not an LMDB file" in result.stdout
    assert len(result.stdout.strip().splitlines()) == 1
    if keep == 0.5:  # the hazard the check removes
        assert _run(_RAW_LMDB_READ, tmp_path / "db").returncode == -signal.SIGBUS


@pytest.mark.parametrize("at", [16, 4096 + 16])
def test_corrupt_meta_page_is_a_clear_error(tmp_path: Path, at: int) -> None:
    _filled_store(tmp_path / "db", commits=2)
    with open(tmp_path / "db" / "data.mdb", "r+b") as fh:
        fh.seek(at)
        fh.write(b"\x00\x00\x00\x00")  # the meta page's magic
    with pytest.raises(FatalStoreError, match="meta page is corrupt"):
        ZapDB.open(tmp_path / "db", map_size=1 << 26)


def test_a_retained_view_outlives_the_view_it_came_from(tmp_path: Path) -> None:
    with ZapDB.open(tmp_path / "db") as db:
        with db.begin() as txn:
            txn.set(b"k", b"v")
            txn.commit()
        view = db.read()
        other = view.retain()
        assert db.snapshot_refs() == 2
        view.close()
        assert other.get(b"k") == b"v" and other.root() == db.root()
        assert db.snapshot_refs() == 1
        other.close()
        assert db.snapshot_refs() == 0
        with pytest.raises(StoreError):
            view.retain()  # closed: nothing to take a reference to
