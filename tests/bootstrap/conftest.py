"""Fixtures for the bootstrap tests (the chain builder is zapstack.bootstrap.devchain)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zapstack.verify import ThreadVerifier
from zapstack.zapdb import StateChunk, ZapDB


def state_chunks(path: Path, depth: int, keys: int, spread: int) -> tuple[bytes, list[StateChunk]]:
    """A committed state of ``keys`` keys (value sizes 1..spread) and its 2**depth chunks."""
    db = ZapDB.open(str(path))
    txn = db.begin()
    for i in range(keys):
        txn.set(b"k%d" % i, b"v" * (i % spread + 1))
    txn.commit()
    with db.read() as view:
        chunks = [view.chunk(depth, i) for i in range(1 << depth)]
        root = view.root()
    db.close()
    return root, chunks


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
