"""Checks of a store directory: LMDB meta pages read by hand, the on-disk layout stamp."""

from __future__ import annotations

import random
from pathlib import Path

import lmdb
import pytest

from zapstack.errors import FatalStoreError, StoreError
from zapstack.zapdb import ZapDB, reference_root
from zapstack.zapdb.files import LAYOUT, _meta, check_layout


def _filled_store(path: Path, commits: int = 20) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    rng = random.Random(5)
    with ZapDB.open(path, map_size=1 << 26) as db:
        for c in range(commits):
            txn = db.begin()
            for i in range(40):
                key, value = f"{c}/{i}".encode(), rng.randbytes(300)
                txn.set(key, value)
                state[key] = value
            txn.commit()
    return state


def _raw(path: Path) -> tuple[lmdb.Environment, tuple[object, object, object]]:
    env = lmdb.open(str(path), map_size=1 << 26, max_dbs=3)
    return env, (env.open_db(b"data"), env.open_db(b"nodes"), env.open_db(b"meta"))


def test_meta_pages_read_as_lmdb_reports_them(tmp_path: Path) -> None:
    """The reader of ``check_files`` agrees with LMDB's own ``env.info()``."""
    import lmdb

    _filled_store(tmp_path / "db")
    raw = (tmp_path / "db" / "data.mdb").read_bytes()
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 26, max_dbs=3, readonly=True)
    info, psize = env.info(), env.stat()["psize"]
    env.close()
    metas = [_meta(raw, 0), _meta(raw, psize)]
    assert all(m is not None and m[0] == psize for m in metas)
    newest = max(metas, key=lambda m: m[2])  # type: ignore[arg-type, return-value]
    assert newest is not None and (newest[1], newest[2]) == (info["last_pgno"], info["last_txnid"])
    assert len(raw) == (info["last_pgno"] + 1) * psize


def test_a_new_store_is_stamped_layout_2(tmp_path: Path) -> None:
    ZapDB.open(tmp_path / "db", map_size=1 << 26).close()
    env, dbs = _raw(tmp_path / "db")
    with env.begin() as txn:
        assert txn.get(b"layout", db=dbs[2]) == b"\x02"
    env.close()
    assert LAYOUT == 2


def _to_layout_v1(path: Path) -> None:
    """What layout v1 wrote for the same tree: keys ``depth || p_masked``, no stamp."""
    env, dbs = _raw(path)
    with env.begin(write=True) as txn:
        records = list(txn.cursor(db=dbs[1]).iternext())
        txn.drop(dbs[1], delete=False)
        for key, rec in records:
            txn.put(key[32:] + key[:32], rec, db=dbs[1])
        txn.delete(b"layout", db=dbs[2])
    env.close()


def test_a_layout_v1_store_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    state = _filled_store(tmp_path / "db")
    _to_layout_v1(tmp_path / "db")
    with pytest.raises(
        StoreError, match=r"layout v1 .* re-sync the state or restore from a backup"
    ):
        ZapDB.open(tmp_path / "db", map_size=1 << 26)
    with pytest.raises(FatalStoreError, match="layout v1"):  # refused again: nothing changed
        ZapDB.open(tmp_path / "db", map_size=1 << 26)
    env, dbs = _raw(tmp_path / "db")
    with env.begin() as txn:
        assert check_layout(txn, dbs) is not None
        assert txn.stat(dbs[0])["entries"] == len(state)
    env.close()


def test_an_unknown_layout_is_refused(tmp_path: Path) -> None:
    _filled_store(tmp_path / "db", commits=1)
    env, dbs = _raw(tmp_path / "db")
    with env.begin(write=True) as txn:
        txn.put(b"layout", b"\x03", db=dbs[2])
    env.close()
    with pytest.raises(FatalStoreError, match="unknown layout 03"):
        ZapDB.open(tmp_path / "db", map_size=1 << 26)


def test_an_unstamped_empty_store_is_stamped_and_used(tmp_path: Path) -> None:
    env, _dbs = _raw(tmp_path / "db")  # an environment with nothing in it yet
    env.close()
    with ZapDB.open(tmp_path / "db", map_size=1 << 26) as db:
        txn = db.begin()
        txn.set(b"k", b"v")
        assert txn.commit() == reference_root({b"k": b"v"})
    with ZapDB.open(tmp_path / "db", map_size=1 << 26) as db:  # reopens as layout 2
        assert db.root() == reference_root({b"k": b"v"})


def test_the_c_extension_writes_this_layout() -> None:
    from zapstack.zapdb import smt

    if smt.FAST:  # smt refuses to import a build for another layout
        from zapstack.zapdb import _smtfast

        assert _smtfast.LAYOUT == LAYOUT == 2
