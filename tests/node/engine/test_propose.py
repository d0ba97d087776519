"""The proposer's block: selected txs go in, every validator executes and agrees."""

from __future__ import annotations

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.digest import LegId
from zapstack.node.engine.propose import GROW_TXS, MAX_BLOCK_TXS, MIN_BLOCK_TXS, BlockBudget
from zapstack.zap.frames import parse_tx

from ..conftest import Net, fund_txs, heads, roots, run


def test_validators_finalize_the_same_blocks_with_txs(net: Net) -> None:
    for frame in fund_txs(net, 5):
        for node in net.nodes:
            node.mempool.insert(parse_tx(frame))
    run(net.run_until(3))
    assert min(n.height for n in net.nodes) > 3
    assert len(heads(net)) == 1 and len(roots(net)) == 1
    total_txs = sum(r.txs for r in net.nodes[0].history)
    assert total_txs == 5
    assert all(len(n.mempool) == 0 for n in net.nodes)
    # the cert upgrades past PQ-fast as the slow legs arrive: all four legs present
    stored = cert_mod.decode(net.nodes[0].blocks.cert(1) or b"")
    assert all(stored.field(leg) for leg in LegId)


def test_block_budget_halves_after_a_round_change_and_grows_back_per_height() -> None:
    b = BlockBudget()
    assert b.next(0, 1) == MAX_BLOCK_TXS  # quiet start: the full block
    assert b.next(1, 5) == MAX_BLOCK_TXS // 2  # a round failed since: halve
    assert b.next(3, 9) == MAX_BLOCK_TXS // 4  # more failures: halve once more
    assert b.next(3, 13) == MAX_BLOCK_TXS // 4 + 4 * GROW_TXS  # 4 clean heights
    for k in range(20):
        b.next(4 + k, 14 + k)  # a failure before every proposal
    assert b.size == MIN_BLOCK_TXS  # never below the floor
    assert b.next(23, 10_000) == MAX_BLOCK_TXS  # and never above the cap
