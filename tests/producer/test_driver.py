"""The threaded production pipeline over a real Mempool, ZapDB and validator executor."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zapstack.errors import WireCode
from zapstack.mempool import Mempool
from zapstack.producer import BuildChain, LocalCertifier, Producer, ValidatorCertifier
from zapstack.verify import (
    Account,
    BlockExecutor,
    ThreadVerifier,
    account_id,
    account_key,
    apply_genesis,
)
from zapstack.zap import Signer, SigScheme, build_transfer, parse_tx
from zapstack.zapdb import ZapDB


def _key(i: int) -> Signer:
    return Signer(SigScheme.ED25519, hashlib.sha256(b"prod/%d" % i).digest())


USERS = [_key(i) for i in range(5)]
PROPOSER = _key(99)


def _aid(s: Signer) -> bytes:
    return account_id(s.public_key)


class Node:
    """A proposer that is also its own validator: one ZapDB, one executor."""

    def __init__(self, path: Path, depth: int = 3, rebase_every: int = 16) -> None:
        self.db = ZapDB.open(str(path))
        txn = self.db.begin()
        apply_genesis(txn, {_aid(u): 10_000 for u in USERS})
        txn.commit()
        self.verifier = ThreadVerifier(2)
        self.executor = BlockExecutor(self.db, self.verifier)
        self.pool = Mempool(nonce_floor=self.nonce)
        self.chain = BuildChain(self.db, PROPOSER, rebase_every=rebase_every)
        self.certify = ValidatorCertifier(self.executor, [_key(50)])
        self.producer = Producer(self.pool, self.chain, self.certify, depth=depth, block_txs=6)

    def nonce(self, sender: bytes) -> int:
        with self.db.read() as view:
            return Account.decode(view.get(account_key(sender))).nonce

    def close(self) -> None:
        self.chain.close()
        self.executor.abandon()
        self.verifier.close()
        self.db.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "db")
    yield n
    n.close()


def _fill(pool: Mempool, per_user: int = 4) -> list[bytes]:
    ids = []
    for u, signer in enumerate(USERS):
        for nonce in range(per_user):
            view = parse_tx(build_transfer(signer, _aid(USERS[(u + 1) % 5]), 10, 1 + u, nonce))
            pool.insert(view)
            ids.append(view.tx_id)
    return ids


def _chain_ok(node: Node, finals: list[Any]) -> list[bytes]:
    heights = [f.block.height for f in finals]
    assert heights == list(range(1, len(finals) + 1))
    parent = bytes(32)
    for f in finals:
        assert f.block.parent == parent
        parent = f.block.block_id
    assert node.executor.head == parent and node.db.root() == finals[-1].block.state_root
    return [t.tx_id for f in finals for t in f.block.txs()]


@pytest.mark.parametrize("depth", [1, 3])
def test_pipeline_produces_a_valid_chain(tmp_path: Path, depth: int) -> None:
    node = Node(tmp_path / "db", depth=depth)
    try:
        ids = _fill(node.pool)
        finals = node.producer.run(4)
        included = _chain_ok(node, finals)
        assert sorted(included) == sorted(ids) and len(node.pool) == 0
        assert node.producer.dropped == [] and node.producer.abandoned == []
    finally:
        node.close()


def test_tx_failing_inside_block_is_left_out_and_dropped(node: Node) -> None:
    ids = _fill(node.pool, 2)
    broke = _key(77)  # no genesis balance
    overdraw = parse_tx(build_transfer(broke, _aid(USERS[0]), 5, 50, 0))
    node.pool.insert(overdraw)  # highest fee: selected first
    finals = node.producer.run(2)
    included = _chain_ok(node, finals)
    assert overdraw.tx_id not in included and overdraw.tx_id not in node.pool
    assert node.producer.dropped == [(overdraw.tx_id, WireCode.INSUFFICIENT_BALANCE)]
    assert sorted(included) == sorted(ids)


def test_rejected_block_is_rebuilt_without_the_tx(node: Node) -> None:
    """A bad-signature tx reaches a block; the validator names it; next round is clean."""
    ids = _fill(node.pool, 2)
    good = build_transfer(USERS[4], _aid(USERS[0]), 0, 40, 2)  # funded, next nonce
    forged = parse_tx(good[:-1] + bytes([good[-1] ^ 1]), verify_signatures=False)
    node.pool.insert(forged)  # a pool that skipped verification, for the test
    finals = node.producer.run(2)
    included = _chain_ok(node, finals)
    assert forged.tx_id not in included and forged.tx_id not in node.pool
    assert node.producer.dropped == [(forged.tx_id, WireCode.BAD_SIGNATURE)]
    assert node.producer.abandoned  # the block holding it was abandoned ...
    assert sorted(included) == sorted(ids)  # ... and its good txs made it next round


def test_stages_really_overlap(node: Node) -> None:
    """While block N signs, block N+1 is built (a causality check, no timing)."""
    _fill(node.pool)
    inner = node.certify
    built_during_sign = threading.Event()
    original_build = node.chain.build
    signing = threading.Event()

    def build(seq: int, txs: list[Any]) -> Any:
        if signing.is_set():
            built_during_sign.set()
        return original_build(seq, txs)

    def certify(block: Any) -> Any:
        signing.set()
        built_during_sign.wait(timeout=10)
        signing.clear()
        return inner(block)

    node.producer.chain.build = build  # type: ignore[method-assign]
    node.producer.certify = certify
    node.producer.run(2)
    assert built_during_sign.is_set()


def test_rebase_keeps_roots(tmp_path: Path) -> None:
    node = Node(tmp_path / "db", rebase_every=1)
    try:
        _fill(node.pool, 6)
        finals = node.producer.run(5)
        _chain_ok(node, finals)  # every block's root was re-checked by the validator
        assert node.chain.rebases >= 1
    finally:
        node.close()


def test_local_certifier_signs_the_transcript() -> None:
    from zapstack.zap import build_block, parse_block, verify_signature

    keys = [_key(1), Signer(SigScheme.MLDSA65, bytes(32))]
    block = parse_block(
        build_block(
            PROPOSER, height=1, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=[]
        )
    )
    cert = LocalCertifier(keys)(block)
    assert cert.block_id == block.block_id
    assert all(
        verify_signature(k.scheme, k.public_key, block.digest, s)
        for k, s in zip(keys, cert.signatures, strict=True)
    )
