"""Voting: a proposal is checked before any leg is signed; speculation never runs out."""

from __future__ import annotations

from zapstack.node.wire import Message, MsgType

from ..conftest import Net, roots, run


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
