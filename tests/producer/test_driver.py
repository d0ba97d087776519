"""The threaded production pipeline over a real Mempool, ZapDB and validator executor."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zapstack.errors import LocalProtocolError, WireCode
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


def _guard_livelock(producer: Producer, limit: int = 12) -> None:
    """Fail (instead of hanging) if the producer keeps proposing rejected blocks."""
    inner = producer.certify
    calls = 0

    def certify(block: Any) -> Any:
        nonlocal calls
        calls += 1
        assert calls <= limit, "producer keeps proposing rejected blocks (livelock)"
        return inner(block)

    producer.certify = certify


def _forged_top_fee_tx(pool: Mempool) -> bytes:
    """A bad-signature tx with the top fee (lands in block 0); returns its id."""
    good = build_transfer(USERS[4], _aid(USERS[0]), 0, 40, 2)
    forged = parse_tx(good[:-1] + bytes([good[-1] ^ 1]), verify_signatures=False)
    pool.insert(forged)  # a pool that skipped verification, for the test
    return forged.tx_id


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
    forged = _forged_top_fee_tx(node.pool)  # funded sender, next nonce, bad signature
    _guard_livelock(node.producer)
    finals = node.producer.run(2)
    included = _chain_ok(node, finals)
    assert forged not in included and forged not in node.pool
    assert node.producer.dropped == [(forged, WireCode.BAD_SIGNATURE)]
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


def test_build_running_during_an_abandon_is_unwound_after_it_reports(node: Node) -> None:
    """The livelock interleaving, forced: SIGN(0) is rejected while BUILD(1) is held.

    BUILD(1) may only proceed once the driver has applied the abandon events of
    SIGN(0)'s rejection.  The old driver rolled back slot 1 before its build wrote
    anything (a no-op), so BUILD(1) left an orphan block on the branch and every
    later block was rejected as not extending the head, forever (here: the
    certify guard trips).  Now slot 1 is unwound after its BUILD reports.
    """
    ids = _fill(node.pool, 2)
    forged = _forged_top_fee_tx(node.pool)
    applied_abandon_of_0 = threading.Event()
    log: list[str] = []
    chain, producer = node.chain, node.producer
    original_build, original_abandon, original_apply = chain.build, chain.abandon, producer._apply

    def build(seq: int, txs: list[Any]) -> Any:
        if seq == 1:
            assert applied_abandon_of_0.wait(timeout=30)
        out = original_build(seq, txs)
        log.append(f"built {seq}")
        return out

    def abandon(seq: int) -> None:
        log.append(f"abandon {seq}")
        original_abandon(seq)

    def apply(events: Any) -> None:
        original_apply(events)
        if any(getattr(e, "seq", None) == 0 for e in events):
            applied_abandon_of_0.set()

    chain.build = build  # type: ignore[method-assign]
    chain.abandon = abandon  # type: ignore[method-assign]
    producer._apply = apply  # type: ignore[method-assign]
    _guard_livelock(producer)
    finals = producer.run(2)
    included = _chain_ok(node, finals)
    assert sorted(included) == sorted(ids) and forged not in included
    assert producer.dropped == [(forged, WireCode.BAD_SIGNATURE)]
    # slot 1 was rolled back after its build wrote, never before; exactly once
    assert log.index("abandon 1") > log.index("built 1")
    assert log.count("abandon 1") == 1 and producer.abandoned.count(1) == 1


def test_rejected_block_test_interleaving_repeats_cleanly(tmp_path: Path) -> None:
    """The rejected-block scenario 20 times over fresh nodes: no livelock, same outcome."""
    for i in range(20):
        n = Node(tmp_path / f"db{i}")
        try:
            ids = _fill(n.pool, 2)
            forged = _forged_top_fee_tx(n.pool)
            _guard_livelock(n.producer)
            included = _chain_ok(n, n.producer.run(2))
            assert sorted(included) == sorted(ids) and forged not in included
        finally:
            n.close()


def test_build_of_an_abandoned_slot_is_refused(node: Node) -> None:
    _fill(node.pool, 1)
    txs = node.pool.select(5)
    node.chain.abandon(3)  # never built: a tombstone
    with pytest.raises(LocalProtocolError, match="abandoned"):
        node.chain.build(3, txs)
    built = node.chain.build(4, txs)
    assert built.view.height == 1
    with pytest.raises(LocalProtocolError):  # built already
        node.chain.build(4, txs)
    node.chain.abandon(4)
    node.chain.abandon(4)  # idempotent
    assert node.chain.build(5, txs).view.height == 1  # 4 was rolled back: same tip again


def test_own_block_not_extending_the_head_raises(node: Node) -> None:
    """An orphan on the build branch is a local bug: raised, never retried forever."""
    _fill(node.pool, 2)
    node.chain.build(1000, node.pool.select(1))  # an orphan no slot knows about
    with pytest.raises(LocalProtocolError, match="does not extend the finalized head"):
        node.producer.run(1)


def test_repeated_runs_continue_the_chain(node: Node) -> None:
    ids = _fill(node.pool, 4)
    first = node.producer.run(1)
    second = node.producer.run(1)
    included = _chain_ok(node, first + second)
    assert set(included) <= set(ids) and len(included) == len(set(included))


def test_extend_appends_to_the_newest_block_and_abandon_undoes_both(node: Node) -> None:
    _fill(node.pool, 2)
    txs = node.pool.select(10)
    first, later = txs[:4], txs[4:]
    built = node.chain.build(1, first)
    grown = node.chain.extend(1, later)
    assert [t.tx_id for t in grown.included] == [t.tx_id for t in txs]
    assert grown.failures == ()
    assert (grown.view.height, grown.view.parent) == (built.view.height, built.view.parent)
    assert grown.view.block_id != built.view.block_id
    node.executor.receive(grown.view)  # the validator's executor agrees with its root
    with pytest.raises(LocalProtocolError):
        node.chain.extend(7, later)  # never built
    node.chain.build(2, [])
    with pytest.raises(LocalProtocolError, match="newest"):
        node.chain.extend(1, [])  # a younger block is built on it
    node.chain.abandon(1)  # undoes block 1 (both parts) and block 2
    again = node.chain.build(3, list(txs))
    assert again.view.height == 1 and again.view.state_root == grown.view.state_root
