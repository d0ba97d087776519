"""Fixtures shared by the ZapDB tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zapstack.zapdb import ZapDB


@pytest.fixture
def db(tmp_path: Path) -> Iterator[ZapDB]:
    store = ZapDB.open(tmp_path / "db", map_size=1 << 26)
    try:
        yield store
    finally:
        store.close()
