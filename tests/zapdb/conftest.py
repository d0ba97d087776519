"""Fixtures shared by the ZapDB tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from zapstack.zapdb import Txn, ZapDB


@pytest.fixture
def db(tmp_path: Path) -> Iterator[ZapDB]:
    store = ZapDB.open(tmp_path / "db", map_size=1 << 26)
    try:
        yield store
    finally:
        store.close()


def apply_ops(
    txn: Txn, model: dict[bytes, bytes], ops: Iterable[tuple[bytes, bytes | None]]
) -> None:
    """Apply ``(key, value)`` writes (``None``: delete) to ``txn`` and to the dict ``model``
    that the tests check it against."""
    for key, value in ops:
        if value is None:
            txn.delete(key)
            model.pop(key, None)
        else:
            txn.set(key, value)
            model[key] = value
