"""Commit: a forged cert is never committed; a commit rechecks the mempool."""

from __future__ import annotations

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.digest import LegId
from zapstack.mempool import Mempool
from zapstack.node.engine.commit import MAX_UPGRADES_QUEUED
from zapstack.node.engine.state import STAGES
from zapstack.node.wire import Message, MsgType, encode_final, split_final
from zapstack.verify import Account, account_key
from zapstack.zap.frames import parse_tx
from zapstack.zapdb import ZapDB

from ..conftest import Net, block_txs, run, transfer


def test_a_final_with_a_forged_cert_is_rejected(net: Net) -> None:
    def forge(to: int, msg: Message) -> Message | None:
        if msg.type is not MsgType.FINAL or to != 3:
            return msg
        cert_bytes, block = split_final(msg.payload)
        cert = cert_mod.decode(cert_bytes)
        bad = bytearray(cert.field(LegId.BLS))
        bad[-1] ^= 1
        forged = cert.with_field(LegId.BLS, bytes(bad)).encode()
        return Message(msg.type, msg.height, msg.round, msg.sender, encode_final(forged, block))

    net.filter = forge
    run(net.run_until(0, max_ms=3000))
    run(net.advance(1500))
    assert net.nodes[3].stats["certs_rejected"] >= 1
    assert net.nodes[3].height == 1  # never committed the forged one
    assert net.nodes[0].height > 1


def _state_pool(db: ZapDB) -> Mempool:
    """A mempool whose state hooks read the node's committed ZapDB (as the node's does)."""

    def account(sender: bytes) -> Account:
        view = db.read()
        try:
            return Account.decode(view.get(account_key(sender)))
        finally:
            view.close()

    return Mempool(nonce_floor=lambda s: account(s).nonce, balance=lambda s: account(s).balance)


def test_commit_rechecks_the_pool_a_competing_nonce_leaves(net: Net) -> None:
    """Each node holds a different tx at (user 0, nonce 0); one is committed, the other goes."""
    g = net.genesis
    proposer = g.proposer_of(1, 0)
    mine = transfer(g, 0, 0, amount=10)
    rival = transfer(g, 0, 0, amount=11)  # same sender and nonce, another tx
    sender = parse_tx(mine).sender
    for i, node in enumerate(net.nodes):
        node.mempool = _state_pool(net.dbs[i])
        node.mempool.insert(parse_tx(mine if i == proposer else rival))
    run(net.run_until(1))
    assert parse_tx(mine).tx_id in block_txs(net.nodes[0], 1)
    for node in net.nodes:  # the rival was never selected; the recheck dropped it
        assert node.mempool.sender_nonces(sender) == []
        assert node.mempool.stats.pruned == (0 if node is net.nodes[proposer] else 1)


def test_a_proposal_drops_a_failed_tx_with_its_senders_later_nonces(net: Net) -> None:
    g = net.genesis
    proposer = g.proposer_of(1, 0)
    node = net.nodes[proposer]
    node.mempool = _state_pool(net.dbs[proposer])
    overdraw = parse_tx(transfer(g, 2, 0, amount=2**63))  # more than user 2 holds
    later = [parse_tx(transfer(g, 2, n)) for n in (1, 2)]
    node.mempool.balance = None  # admitted anyway (as from a pool that did not check)
    for view in [overdraw, *later]:
        node.mempool.insert(view)
    run(net.run_until(1))
    assert node.mempool.sender_nonces(overdraw.sender) == []  # the chain after it went too
    assert overdraw.tx_id not in block_txs(node, 1)


def test_cert_upgrades_are_checked_in_the_background_and_bounded(net: Net) -> None:
    node = net.nodes[0]

    async def scenario() -> None:
        await node.upgrades.acquire()  # a stored cert change in progress
        for i in range(MAX_UPGRADES_QUEUED + 5):
            # the message loop is never held up by an upgrade check
            await node.handle(Message(MsgType.CERT_UPGRADE, 1, 0, 1, bytes([i])))
        assert node.upgrades_queued == MAX_UPGRADES_QUEUED  # the rest were dropped
        node.upgrades.release()
        await node.settle()
        assert node.upgrades_queued == 0 and not node.jobs

    run(scenario())


def test_each_node_times_the_stages_of_a_height_in_order(net: Net) -> None:
    """Every node's record says when it saw the proposal, ran it, voted, got FINAL and
    committed, in ms after it entered the height, in that order."""
    run(net.run_until(2))
    for node in net.nodes:
        record = next(r for r in node.history if r.height == 2)
        stages = record.stages_ms
        assert list(stages) == [s for s in STAGES if s in stages]  # timed in order
        assert {"proposal", "executed", "voted", "committed"} <= set(stages), stages
        times = [stages[s] for s in STAGES if s in stages]
        assert times == sorted(times) and times[0] >= 0, stages
        proposer = net.genesis.proposer_of(2, record.round)
        if node.me == proposer:  # its proposal went out after the block interval
            assert stages["proposal"] >= net.genesis.block_interval_ms
