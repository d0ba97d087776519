"""The serial phase, the block executor, per-tx rollback and the failure-matrix rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from zapstack.errors import InvalidBlock, LocalProtocolError, WireCode
from zapstack.testing.unwind import check_unwind_contract
from zapstack.verify import (
    Account,
    BlockExecutor,
    ThreadVerifier,
    account_id,
    account_key,
    apply_tx,
    execute_block,
    execute_candidates,
    read_account,
    verify_sequential,
)
from zapstack.verify.state import MAX_SUPPLY
from zapstack.zap import Signer, build_transfer, parse_block, parse_tx
from zapstack.zapdb import ZapDB

Maker = Callable[..., bytes]


def _aid(s: Signer) -> bytes:
    return account_id(s.public_key)


class CountingVerifier:
    """A ThreadVerifier that counts the blocks it was asked to verify."""

    def __init__(self, inner: ThreadVerifier) -> None:
        self.inner, self.calls = inner, 0

    def submit(self, block: Any) -> Any:
        self.calls += 1
        return self.inner.submit(block)

    def verify(self, block: Any) -> Any:
        return self.submit(block).result()

    def close(self) -> None:
        self.inner.close()


def test_honest_block_applies_and_finalizes(
    db: ZapDB,
    users: list[Signer],
    proposer: Signer,
    verifier: ThreadVerifier,
    honest_block: Maker,
) -> None:
    a, b = users[0], users[1]
    raw = honest_block(
        db, proposer, [build_transfer(a, _aid(b), 10, 2, 0), build_transfer(a, _aid(b), 5, 1, 1)]
    )
    ex = BlockExecutor(db, verifier)
    cand = ex.receive(raw)
    assert cand.receipt.tx_count == 2 and db.version == 1  # not committed yet
    receipt = ex.finalize(cand.receipt.block_id)
    assert db.root() == receipt.state_root == parse_block(raw).state_root
    with db.read() as view:
        assert Account.decode(view.get(account_key(_aid(a)))) == Account(1_000_000 - 18, 2)
        assert Account.decode(view.get(account_key(_aid(proposer)))) == Account(3, 0)
    assert (ex.height, ex.head) == (1, receipt.block_id)
    again = BlockExecutor(db, verifier)  # restart: the head is read back from ZapDB
    assert (again.height, again.head) == (1, receipt.block_id)


def test_single_tx_fails_inside_block(
    db: ZapDB,
    users: list[Signer],
    proposer: Signer,
    verifier: ThreadVerifier,
    forged_block: Maker,
) -> None:
    """Failure row: per-tx rollback; block rejected as a whole; never reaches commit."""
    a, b = users[0], users[1]
    good = build_transfer(a, _aid(b), 10, 1, 0)
    overdraw = build_transfer(b, _aid(a), 2_000_000, 1, 0)
    raw = forged_block(
        proposer, [good, overdraw, build_transfer(a, _aid(b), 1, 1, 1)], root=bytes(32)
    )
    block = parse_block(raw)
    branch = db.snapshot()
    ref = db.snapshot()
    try:
        with pytest.raises(InvalidBlock) as err:
            execute_block(block, verify_sequential(block), branch)
        assert err.value.tx_index == 1 and err.value.code is WireCode.INSUFFICIENT_BALANCE
        # the branch holds exactly tx 0: tx 1 was rolled back, tx 2 never ran
        execute_candidates(ref, [parse_tx(good)], _aid(proposer))
        assert branch.root() == ref.root()
    finally:
        branch.discard()
        ref.discard()
    root_before = db.root()
    ex = BlockExecutor(db, verifier)
    with pytest.raises(InvalidBlock) as err2:
        ex.receive(raw)
    assert err2.value.tx_index == 1
    assert ex.candidates == () and db.root() == root_before and ex.height == 0


def test_partial_write_is_rolled_back(
    tmp_path: Any, proposer: Signer, users: list[Signer], forged_block: Maker
) -> None:
    """A tx that fails after writing (the u64 credit guard) is undone by rollback(diff)."""
    a, b = users[0], users[1]
    db = ZapDB.open(str(tmp_path / "odd"))
    txn = db.begin()  # a state no checked genesis allows: b's balance at the u64 limit
    txn.set(account_key(_aid(a)), Account(5, 0).encode())
    txn.set(account_key(_aid(b)), Account(MAX_SUPPLY, 0).encode())
    txn.commit()
    block = parse_block(
        forged_block(proposer, [build_transfer(a, _aid(b), 1, 0, 0)], root=bytes(32))
    )
    branch = db.snapshot()
    with pytest.raises(InvalidBlock) as err:
        execute_block(block, verify_sequential(block), branch)
    assert err.value.code is WireCode.BAD_BLOCK
    assert read_account(branch, _aid(a)) == Account(5, 0) and branch.root() == db.root()
    branch.discard()
    db.close()


def test_sig_failure_rejects_block_before_any_write(
    db: ZapDB,
    users: list[Signer],
    proposer: Signer,
    verifier: ThreadVerifier,
    honest_block: Maker,
) -> None:
    """Failure row: sig verify fails in the parallel batch -> block discarded, no write."""
    a, b = users[0], users[1]
    txs = [build_transfer(a, _aid(b), 1, 1, n) for n in range(4)]
    raw = honest_block(db, proposer, txs)
    # re-lay the block with tx 2's signature flipped (its root is still the honest one)
    tampered = txs[2][:-1] + bytes([txs[2][-1] ^ 1])
    from zapstack.zap import build_block

    bad = build_block(
        proposer,
        height=1,
        parent=bytes(32),
        timestamp_ms=1000,
        state_root=parse_block(raw).state_root,
        txs=[*txs[:2], tampered, txs[3]],
    )
    ex = BlockExecutor(db, verifier)
    with pytest.raises(InvalidBlock) as err:
        ex.receive(bad)
    assert (err.value.tx_index, err.value.code) == (2, WireCode.BAD_SIGNATURE)
    assert ex.candidates == () and db.version == 1
    # the proposer re-proposes without the tx: the honest block (nonce 2 dropped too,
    # nonce 3 would gap) of txs 0,1
    fixed = ex.receive(honest_block(db, proposer, txs[:2]))
    assert ex.finalize(fixed.receipt.block_id).tx_count == 2


def test_bad_state_root(
    db: ZapDB, users: list[Signer], proposer: Signer, verifier: ThreadVerifier, forged_block: Maker
) -> None:
    raw = forged_block(
        proposer, [build_transfer(users[0], _aid(users[1]), 1, 1, 0)], root=b"\x07" * 32
    )
    with pytest.raises(InvalidBlock) as err:
        BlockExecutor(db, verifier).receive(raw)
    assert err.value.code is WireCode.BAD_STATE_ROOT and err.value.tx_index == -1


def test_late_block_in_fork_race(
    db: ZapDB,
    users: list[Signer],
    proposer: Signer,
    verifier: ThreadVerifier,
    honest_block: Maker,
) -> None:
    """Failure row: a block arriving after its height finalized for another is discarded."""
    a, b, c = users[0], users[1], users[2]
    block_a = honest_block(db, proposer, [build_transfer(a, _aid(b), 7, 1, 0)])
    block_b = honest_block(db, proposer, [build_transfer(c, _aid(b), 9, 1, 0)])
    counting = CountingVerifier(verifier)
    ex = BlockExecutor(db, counting)
    cand_a, cand_b = ex.receive(block_a), ex.receive(block_b)  # speculative, both applied
    assert len(ex.candidates) == 2
    ex.finalize(cand_a.receipt.block_id)
    assert ex.candidates == () and db.root() == cand_a.receipt.state_root
    calls = counting.calls
    for late in (block_b, honest_block(db, proposer, [])):  # B, and one never seen before
        with pytest.raises(InvalidBlock, match="late block"):
            ex.receive(late)
    assert counting.calls == calls  # discarded before any verify work
    with pytest.raises(LocalProtocolError):
        ex.finalize(cand_b.receipt.block_id)
    assert db.root() == cand_a.receipt.state_root and ex.height == 1


def test_block_must_extend_head(
    db: ZapDB, proposer: Signer, verifier: ThreadVerifier, honest_block: Maker
) -> None:
    ex = BlockExecutor(db, verifier)
    for kw in ({"height": 2}, {"parent": b"\x01" * 32}):
        with pytest.raises(InvalidBlock, match="extend"):
            ex.receive(honest_block(db, proposer, [], **kw))


def test_speculative_width_is_capped(
    db: ZapDB, users: list[Signer], proposer: Signer, verifier: ThreadVerifier, honest_block: Maker
) -> None:
    ex = BlockExecutor(db, verifier, max_candidates=2)
    blocks = [
        honest_block(db, proposer, [build_transfer(users[i], _aid(users[5]), 1, 0, 0)])
        for i in range(3)
    ]
    ex.receive(blocks[0])
    assert ex.receive(blocks[0]) == ex.candidates[0]  # a duplicate is not a new candidate
    ex.receive(blocks[1])
    with pytest.raises(InvalidBlock) as err:
        ex.receive(blocks[2])
    assert err.value.code is WireCode.RATE_LIMITED
    ex.abandon()
    ex.abandon()
    assert ex.candidates == ()


def test_branch_of_is_the_candidates_executed_state(
    db: ZapDB, users: list[Signer], proposer: Signer, verifier: ThreadVerifier, honest_block: Maker
) -> None:
    a, b = users[0], users[1]
    ex = BlockExecutor(db, verifier)
    assert ex.store is db
    raw = honest_block(db, proposer, [build_transfer(a, _aid(b), 10, 2, 0)])
    cand = ex.receive(raw)
    branch = ex.branch_of(cand.receipt.block_id)
    assert branch is not None
    assert branch.root() == cand.receipt.state_root != db.root()  # the block's post-state
    with db.read() as view:
        assert branch.get(b"acct/" + _aid(b)) != view.get(b"acct/" + _aid(b))
    assert ex.branch_of(b"\x00" * 32) is None
    ex.finalize(cand.receipt.block_id)
    assert ex.branch_of(cand.receipt.block_id) is None  # committed: no longer a candidate


def test_per_tx_rollback_unwind_contract(db: ZapDB, users: list[Signer], proposer: Signer) -> None:
    """The shared unwind contract against ZapDB rollback(diff) as the executor uses it."""
    a, b = users[0], users[1]
    txs = [parse_tx(build_transfer(a, _aid(b), 3, 1, n)) for n in range(2)]
    prop = _aid(proposer)

    def observe(subject: tuple[Any, Any]) -> tuple[str, bytes | None]:
        branch, _ = subject
        if branch.state != "open":
            return branch.state, None
        return branch.state, branch.root()

    def applied() -> tuple[tuple[Any, Any], object]:
        branch = db.snapshot()
        execute_candidates(branch, txs[:1], prop)
        before = branch.root()
        branch.begin_tx()  # the executor's per-tx bracket around tx 1
        apply_tx(branch, txs[1], prop, 1)
        diff = branch.end_tx()
        return (branch, diff), ("open", before)

    def rolled_back() -> tuple[tuple[Any, Any], object]:
        (branch, diff), want = applied()
        branch.rollback(diff)
        return (branch, diff), want

    def discarded() -> tuple[tuple[Any, Any], object]:
        (branch, diff), _ = applied()
        branch.discard()
        return (branch, diff), ("discarded", None)

    check_unwind_contract(
        {"applied": applied, "rolled-back": rolled_back, "discarded": discarded},
        unwind=lambda s: s[0].rollback(s[1]),
        observe=observe,
    )
