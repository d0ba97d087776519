"""Fixtures for the bootstrap tests (the chain builder is zapstack.bootstrap.devchain)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zapstack.verify import ThreadVerifier
from zapstack.zapdb import ZapDB


@pytest.fixture
def verifier() -> Iterator[ThreadVerifier]:
    v = ThreadVerifier(2)
    yield v
    v.close()


@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[list[ZapDB]]:
    """Four fresh ZapDBs: index 0 is the bootstrapping node, 1..3 servers."""
    out = [ZapDB.open(str(tmp_path / f"db{i}")) for i in range(4)]
    yield out
    for db in out:
        db.close()
