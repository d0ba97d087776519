"""Shared fixtures for the verify-pipeline tests: keys, a genesis ZapDB, block builders."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from zapstack.verify import ThreadVerifier, account_id, apply_genesis, execute_candidates
from zapstack.zap import Signer, SigScheme, TxView, build_block, parse_tx
from zapstack.zapdb import ZapDB

GENESIS_BALANCE = 1_000_000


def signer(i: int, scheme: SigScheme = SigScheme.ED25519) -> Signer:
    """Deterministic test key number ``i``."""
    return Signer(scheme, hashlib.sha256(b"verify-test/%d/%d" % (scheme, i)).digest())


@pytest.fixture(scope="session")
def users() -> list[Signer]:
    return [signer(i) for i in range(6)]


@pytest.fixture(scope="session")
def proposer() -> Signer:
    return signer(100)


@pytest.fixture
def db(tmp_path: Path, users: list[Signer]) -> Iterator[ZapDB]:
    store = ZapDB.open(str(tmp_path / "db"))
    txn = store.begin()
    apply_genesis(txn, {account_id(u.public_key): GENESIS_BALANCE for u in users})
    txn.commit()
    yield store
    store.close()


@pytest.fixture
def verifier() -> Iterator[ThreadVerifier]:
    v = ThreadVerifier(2)
    yield v
    v.close()


def _honest_block(
    db: ZapDB,
    proposer: Signer,
    txs: Sequence[bytes],
    *,
    height: int = 1,
    parent: bytes = bytes(32),
) -> bytes:
    """A block whose header root is the real post-state root of ``txs`` (all must apply)."""
    views: list[TxView] = [parse_tx(t) for t in txs]
    branch = db.snapshot()
    try:
        included, failed = execute_candidates(branch, views, account_id(proposer.public_key))
        assert not failed, failed
        root = branch.root()
    finally:
        branch.discard()
    return build_block(
        proposer,
        height=height,
        parent=parent,
        timestamp_ms=1000 * height,
        state_root=root,
        txs=included,
    )


def _forged_block(
    proposer: Signer,
    txs: Sequence[bytes],
    *,
    root: bytes,
    height: int = 1,
    parent: bytes = bytes(32),
) -> bytes:
    """A block with an arbitrary header root (a byzantine or buggy proposer)."""
    return build_block(
        proposer,
        height=height,
        parent=parent,
        timestamp_ms=1000 * height,
        state_root=root,
        txs=list(txs),
    )


@pytest.fixture(scope="session")
def honest_block() -> object:
    """``honest_block(db, proposer, txs, height=, parent=)`` -> block bytes."""
    return _honest_block


@pytest.fixture(scope="session")
def forged_block() -> object:
    """``forged_block(proposer, txs, root=, height=, parent=)`` -> block bytes."""
    return _forged_block
