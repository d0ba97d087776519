"""Pre-build: the next proposer builds N+1 on N's branch; used only on the block that is final."""

from __future__ import annotations

from zapstack.node.engine import Consensus, prebuild, propose
from zapstack.node.wire import Message, MsgType
from zapstack.zap.frames import parse_block, parse_tx

from ..conftest import Net, block_txs, heads, roots, run, transfer


def test_the_next_proposer_proposes_the_block_it_built_on_the_voted_one(net: Net) -> None:
    g = net.genesis
    first = [parse_tx(transfer(g, 0, n)) for n in range(3)]
    second = [parse_tx(transfer(g, 0, n)) for n in range(3, 6)]
    for node in net.nodes:
        for view in first:
            node.mempool.insert(view)
    fed: list[int] = []

    def feed_after_block_1(to: int, msg: Message) -> Message:
        # nonces 3..5 arrive once block 1 (nonces 0..2) is built and proposed: the
        # pre-build of block 2 must start its sender past block 1's txs
        if msg.type is MsgType.PROPOSAL and msg.height == 1 and not fed:
            fed.append(1)
            for node in net.nodes:
                for view in second:
                    node.mempool.insert(view)
        return msg

    net.filter = feed_after_block_1
    run(net.run_until(2))
    proposer2 = net.nodes[g.proposer_of(2, 0)]
    assert proposer2.stats["prebuilt"] >= 1 and proposer2.stats["prebuilt_proposed"] >= 1
    assert block_txs(net.nodes[0], 1) == [v.tx_id for v in first]
    assert block_txs(net.nodes[0], 2) == [v.tx_id for v in second]
    record2 = next(r for r in net.nodes[0].history if r.height == 2)
    assert record2.round == 0 and record2.proposer == g.proposer_of(2, 0)
    assert len(heads(net)) == 1 and len(roots(net)) == 1
    assert all(len(n.mempool) == 0 for n in net.nodes)
    for node in net.nodes:
        node.prebuild.drop()  # a block built ahead for height 3, if any
    assert all(db.snapshot_refs() == 0 for db in net.dbs)  # every fork discarded


def test_only_the_next_proposer_prebuilds(net: Net) -> None:
    run(net.run_until(3))
    for i, node in enumerate(net.nodes):
        mine = [h for h in range(2, 5) if net.genesis.proposer_of(h, 0) == i]
        if not mine:
            assert node.stats["prebuilt"] == 0
        assert node.stats["prebuilt_proposed"] <= node.stats["prebuilt"]
    assert sum(n.stats["prebuilt_proposed"] for n in net.nodes) >= 2  # heights 2, 3 at least


def _ahead(node: Consensus, parent: bytes) -> prebuild.Ahead:
    """A block built ahead on the committed head, empty, its chain open."""
    chain = propose.build_chain(node, node.executor._db, node.height, parent)
    built = chain.build(0, [])
    proposal = propose.Proposal(node.height, parent, bytes(built.view.buffer), ())
    return prebuild.Ahead(proposal, chain, {}, 10, propose.MAX_BLOCK_BYTES)


def test_a_block_built_on_another_parent_or_round_is_dropped(net: Net) -> None:
    node, db = net.nodes[0], net.dbs[0]
    head = node.executor.head
    for target, round_ in (((1, b"\x07" * 32), 0), ((1, head), 1), ((2, head), 0)):
        node.prebuild = prebuild.Prebuild(target, None, _ahead(node, target[1]))
        assert db.snapshot_refs() == 1  # the fork of the block built ahead
        assert run(prebuild.take(node, 1, round_)) is None
        assert node.prebuild.ready is None and node.prebuild.target is None
        assert db.snapshot_refs() == 0  # dropped: its fork discarded
    node.prebuild = prebuild.Prebuild((1, head), None, _ahead(node, head))
    got = run(prebuild.take(node, 1, 0))
    assert got is not None and got.parent == head and node.stats["prebuilt_proposed"] == 1
    assert node.prebuild.ready is None and db.snapshot_refs() == 0  # handed out once
    assert run(prebuild.take(node, 1, 0)) is None


def test_txs_that_came_in_since_the_pre_build_are_appended(net: Net) -> None:
    g = net.genesis
    node = net.nodes[g.proposer_of(1, 0)]
    head = node.executor.head
    late = [parse_tx(transfer(g, 2, n)) for n in range(2)]
    for view in late:
        node.mempool.insert(view)
    node.prebuild = prebuild.Prebuild((1, head), None, _ahead(node, head))
    got = run(prebuild.take(node, 1, 0))
    assert got is not None
    block = parse_block(got.block, chain_id=g.chain_id)
    assert [t.tx_id for t in block.txs()] == [v.tx_id for v in late]
    assert (block.height, block.parent) == (1, head)
    node.executor.receive(block)  # every validator's executor accepts it, root included
    node.executor.abandon()
    # a stale pre-build (its parent will never be final) is dropped by the tick
    node.prebuild = prebuild.Prebuild((1, b"\x07" * 32), None, _ahead(node, head))
    prebuild.forget_stale(node)
    assert node.prebuild.target is None and net.dbs[g.proposer_of(1, 0)].snapshot_refs() == 0


def test_a_pre_build_on_a_branch_gone_meanwhile_is_skipped(net: Net) -> None:
    run(net.run_until(1))
    g = net.genesis
    builder = net.nodes[g.proposer_of(2, 0)]
    block1 = parse_block(builder.blocks.block(1) or b"", chain_id=g.chain_id)
    refs = net.dbs[g.proposer_of(2, 0)].snapshot_refs()
    # block 1 is committed: its candidate branch is gone, nothing is built on it
    assert prebuild._build(builder, (2, block1.block_id), block1, 10) is None
    assert net.dbs[g.proposer_of(2, 0)].snapshot_refs() == refs  # and no fork left open


def test_floors_follow_each_senders_last_nonce_in_the_block(net: Net) -> None:
    g = net.genesis
    txs = [transfer(g, 0, 0), transfer(g, 1, 0), transfer(g, 0, 1), transfer(g, 0, 2)]
    for node in net.nodes:
        for frame in txs:
            node.mempool.insert(parse_tx(frame))
    run(net.run_until(1))
    block = parse_block(net.nodes[0].blocks.block(1) or b"", chain_id=g.chain_id)
    views = [parse_tx(f) for f in txs]
    want = {views[0].sender: 3, views[1].sender: 1}  # independent: counted from the frames
    assert prebuild.floors_after(block.txs()) == want
    assert prebuild.floors_after(block.txs(), {views[1].sender: 5}) == {**want, views[1].sender: 5}
