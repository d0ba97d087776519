"""The engine's timer and dispatch: round changes, stale proposals, round timeouts."""

from __future__ import annotations

from zapstack.node.wire import Message, MsgType

from ..conftest import Net, roots, run


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


def test_round_timeout_grows_with_failed_rounds(net: Net) -> None:
    c = net.nodes[0]
    assert (
        c.round_timeout_ms(0)
        < c.round_timeout_ms(1)
        < c.round_timeout_ms(6)
        == c.round_timeout_ms(60)
    )
