"""FailAt (zapdb/faults.py): fails the commit path's writes from the chosen one on, of the
chosen kinds, only while armed; a store under it halts and keeps its last commit."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from zapstack.errors import FatalStoreError
from zapstack.zapdb import FailAt, ZapDB


def test_fails_from_the_chosen_write_on_and_counts() -> None:
    fault = FailAt(at=2, err=errno.EIO, ops=frozenset({"put"}))
    fault("put", 0)
    fault("put", 1)
    fault("meta", 5)  # another kind of write
    with pytest.raises(OSError) as info:
        fault("put", 2)
    assert info.value.errno == errno.EIO and "put #2" in str(info.value)
    with pytest.raises(OSError):
        fault("put", 9)
    assert fault.fired == 2
    fault.armed = False
    fault("put", 3)
    assert fault.fired == 2


def test_a_store_under_it_halts_and_keeps_its_last_commit(tmp_path: Path) -> None:
    fault = FailAt(at=1)
    fault.armed = False
    with ZapDB.open(tmp_path / "db", fault_injector=fault) as db:
        with db.begin() as txn:
            txn.set(b"a", b"1")
            root = txn.commit()
        fault.armed = True
        with db.begin() as txn:
            txn.set(b"b", b"2")
            txn.set(b"c", b"3")
            with pytest.raises(FatalStoreError):
                txn.commit()
        assert db.halted and fault.fired == 1
    with ZapDB.open(tmp_path / "db") as db:
        assert db.root() == root and db.version == 1 and db.meta_get(b"x") is None
