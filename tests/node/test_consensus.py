"""The consensus driver over an in-process network: happy path and failure-matrix rows."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from typing import Any

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.digest import LegId
from zapstack.node.genesis import devnet_user
from zapstack.node.wire import Message, MsgType, encode_final, split_final
from zapstack.zap.frames import build_transfer, parse_tx

from .conftest import Net, run


def roots(net: Net) -> set[bytes]:
    return {db.root() for db in net.dbs}


def heads(net: Net) -> set[bytes]:
    return {node.executor.head for node in net.nodes}


def fund_txs(net: Net, count: int) -> list[bytes]:
    seed = bytes.fromhex(net.genesis.raw["devnet_seed"])
    user = devnet_user(seed, 0)
    to = hashlib.sha256(devnet_user(seed, 1).public_key).digest()
    return [build_transfer(user, to, 10, 2, nonce, net.genesis.chain_id) for nonce in range(count)]


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


def test_silent_proposer_leads_to_a_round_change(net: Net) -> None:
    def drop_proposals_of_validator_1(to: int, msg: Message) -> Message | None:
        return None if msg.type is MsgType.PROPOSAL and msg.sender == 1 else msg

    net.filter = drop_proposals_of_validator_1
    run(net.run_until(2, max_ms=40_000))
    assert min(n.height for n in net.nodes) > 2  # height 1's proposer is validator 1
    record = next(r for r in net.nodes[0].history if r.height == 1)
    assert record.round >= 1 and record.proposer != 1
    assert all(n.stats["round_changes"] >= 1 for n in net.nodes)
    assert len(roots(net)) == 1


def test_cert_leg_below_threshold_degrades_the_tier_never_blocks(net: Net) -> None:
    # Corona responses never arrive: that leg cannot reach its threshold.
    net.filter = lambda to, msg: None if msg.type is MsgType.CORONA_RESPONSE else msg
    run(net.run_until(1))
    run(net.advance(4000))  # past the policy deadline
    assert min(n.height for n in net.nodes) > 1
    cert = cert_mod.decode(net.nodes[2].blocks.cert(1) or b"")
    assert not cert.field(LegId.CORONA)  # published with the leg's field empty
    assert cert.field(LegId.BLS) and cert.field(LegId.PULSAR)
    assert net.nodes[0].history[0].tier == "PQ-fast"


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


def test_late_block_of_a_fork_race_is_discarded(net: Net) -> None:
    run(net.run_until(1))
    node = net.nodes[0]
    height_before, root_before = node.height, net.dbs[0].root()
    # a competing proposal for the already-final height 1, from its proposer
    stale = next(m for to, m in net.delivered if m.type is MsgType.PROPOSAL and m.height == 1)
    rejected = node.stats["blocks_rejected"]
    run(node.handle(Message(MsgType.PROPOSAL, 1, 0, stale.sender, stale.payload)))
    assert node.stats["blocks_rejected"] == rejected + 1
    assert node.height == height_before and net.dbs[0].root() == root_before


def test_proposal_signed_with_a_foreign_key_gets_no_votes(net: Net) -> None:
    from zapstack.zap.frames import build_block
    from zapstack.zap.sigschemes import Signer, SigScheme

    intruder = Signer(SigScheme.ED25519, b"\x01" * 32)
    g = net.genesis
    block = build_block(
        intruder,
        height=1,
        parent=g.genesis_id,
        timestamp_ms=0,
        state_root=net.dbs[2].root(),
        txs=[],
        chain_id=g.chain_id,
    )
    node = net.nodes[2]
    run(node.handle(Message(MsgType.PROPOSAL, 1, 0, g.proposer_of(1, 0), block)))
    assert node.stats["blocks_rejected"] == 1 and node.stats["votes_sent"] == 0


def test_many_failed_rounds_never_exhaust_the_speculative_width(net: Net) -> None:
    # no FINAL gets through for the first 45 s: every validator keeps changing
    # rounds, each round's block lands on a speculative branch.  Before the fix a
    # 4th round's proposal hit "speculative width exhausted" and got no votes, so
    # the chain could never recover.
    net.filter = lambda to, msg: (
        None if msg.type is MsgType.FINAL and net.clock_ms < 45_000 else msg
    )
    run(net.advance(45_000))
    assert all(n.round >= 4 and n.height == 1 for n in net.nodes)
    run(net.run_until(1, max_ms=60_000))
    assert min(n.height for n in net.nodes) > 1
    assert all(n.stats["blocks_rejected"] == 0 for n in net.nodes)
    assert all(len(n.executor.candidates) <= n.executor.max_candidates for n in net.nodes)
    assert len(roots(net)) == 1


def test_round_timeout_grows_with_failed_rounds(net: Net) -> None:
    c = net.nodes[0]
    assert (
        c.round_timeout_ms(0)
        < c.round_timeout_ms(1)
        < c.round_timeout_ms(6)
        == c.round_timeout_ms(60)
    )


class OverlapProbe:
    """Wraps a ConsensusRound: counts the calls inside it at once (it is single-threaded)."""

    CALLS = ("on_share", "on_corona_commit", "on_corona_response", "on_timer", "abandon", "cert")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.inside = 0
        self.most = 0
        self.calls = 0
        self.guard = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.CALLS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.guard:
                self.inside += 1
                self.calls += 1
                self.most = max(self.most, self.inside)
            try:
                time.sleep(0.002)  # widen the window a second caller would hit
                return attr(*args, **kwargs)
            finally:
                with self.guard:
                    self.inside -= 1

        return call


def test_calls_into_one_round_never_overlap(net: Net) -> None:
    """Votes, ticks and a round change race on worker threads; the round sees one at a time."""

    async def main() -> OverlapProbe:
        proposer = net.genesis.proposer_of(1, 0)
        node = net.nodes[proposer]
        net.clock_ms = net.genesis.block_interval_ms
        await node.tick()  # proposes (1, 0): PROPOSAL to everyone
        agg = node.aggs[(1, 0)]
        probe = OverlapProbe(agg.round)
        agg.round = probe  # type: ignore[assignment]
        proposals, net.pending = net.pending, []
        for to, msg in proposals:
            if to != proposer:
                await net.nodes[to].handle(msg)  # the others vote: shares to the proposer
        votes = [msg for to, msg in net.pending if to == proposer]
        net.pending.clear()
        assert len(votes) >= 6

        async def threaded(fn: Any, *args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(fn, *args, **kwargs)

        node.io.run = threaded  # type: ignore[method-assign]
        net.clock_ms += node.round_timeout_ms(0) + 1  # the tick also changes the round
        await asyncio.gather(*(node.handle(m) for m in votes), node.tick(), node.tick())
        return probe

    probe = run(main())
    assert probe.calls >= 8
    assert probe.most == 1
