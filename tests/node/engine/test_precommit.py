"""Corona round 1 ahead of the proposal: prepared, sent ahead, held, fed; never reused."""

from __future__ import annotations

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.digest import LegId
from zapstack.node.wire import Message, MsgType, decode_signers

from ..conftest import Net, run

ASK = b"\x00\x00"  # CORONA_SIGNERS with no signers: "send me your commitment"


def _corona_certified(net: Net, heights: range) -> list[int]:
    node = net.nodes[0]
    return [h for h in heights if cert_mod.decode(node.blocks.cert(h) or b"").field(LegId.CORONA)]


def _sent(net: Net, kind: MsgType) -> list[Message]:
    return [m for _, m in net.delivered if m.type is kind]


def test_round1_runs_ahead_and_only_round2_follows_the_proposal(net: Net) -> None:
    run(net.run_until(4))
    run(net.advance(4000))  # past the policy deadline: every late leg is in
    assert _corona_certified(net, range(2, 5)) == [2, 3, 4]
    for node in net.nodes:
        assert node.stats["corona_prepared"] >= 3
    # the commitments went out ahead, for heights the sender had not reached
    ahead = _sent(net, MsgType.CORONA_PRECOMMIT)
    assert any(m.height > 1 for m in ahead)
    # from height 2 on no validator ran round 1 after a proposal
    late = [m for m in _sent(net, MsgType.CORONA_COMMIT) if m.height >= 2]
    assert late == []
    # the signer set went out before (or with) the proposal of its height
    first = {}
    for _, m in net.delivered:
        first.setdefault((m.type, m.height), len(first))
    for h in (2, 3, 4):
        assert first[(MsgType.CORONA_SIGNERS, h)] < first[(MsgType.PROPOSAL, h)]


def test_no_commitment_held_ahead_falls_back_to_asking(net: Net) -> None:
    # every CORONA_PRECOMMIT is lost: the aggregator holds none at its proposal,
    # asks (CORONA_SIGNERS with k = 0) and gets the prepared commitments then
    net.filter = lambda to, msg: None if msg.type is MsgType.CORONA_PRECOMMIT else msg
    run(net.run_until(3))
    run(net.advance(4000))
    assert _corona_certified(net, range(1, 4)) == [1, 2, 3]
    asks = [m for m in _sent(net, MsgType.CORONA_SIGNERS) if m.payload == ASK]
    assert {m.height for m in asks} >= {1, 2, 3}


def test_round_change_destroys_the_prepared_session(net: Net) -> None:
    # round 0's proposal of height 1 is lost: nobody votes, the round times out,
    # every session prepared for (1, 0) is erased unused, and round 1 -- which
    # nobody prepared -- signs with a fresh round 1 after its proposal
    net.filter = lambda to, msg: (
        None if msg.type is MsgType.PROPOSAL and (msg.height, msg.round) == (1, 0) else msg
    )
    run(net.advance(300))
    prepared = [n.presessions.peek((1, 0)) for n in net.nodes]
    assert all(s is not None and s.open for s in prepared)
    run(net.run_until(1))
    run(net.advance(4000))
    assert all(n.height > 1 for n in net.nodes)
    assert not any(s is not None and s.open for s in prepared)  # nonces erased
    assert all(n.presessions.peek((1, 0)) is None for n in net.nodes)
    fresh = {m.sender for m in _sent(net, MsgType.CORONA_COMMIT) if (m.height, m.round) == (1, 1)}
    assert len(fresh) >= 3
    assert _corona_certified(net, range(1, 2)) == [1]


def test_sessions_never_outlive_their_use(net: Net) -> None:
    run(net.run_until(4))
    run(net.advance(4000))
    for node in net.nodes:
        # answered (popped) or told it is not a signer (erased): nothing still open
        passed = [s for (h, _), (s, _) in node.corona.items() if h < node.height - 1]
        assert not any(s.open for s in passed)
    notices = [
        m
        for m in _sent(net, MsgType.CORONA_SIGNERS)
        if m.payload != ASK and not any(decode_signers(m.payload).values())
    ]
    assert notices  # with 4 validators and t = 3, one is left out each height
