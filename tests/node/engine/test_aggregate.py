"""Aggregation: a leg below threshold degrades the published tier, never blocks it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.digest import LegId
from zapstack.node.wire import MsgType

from ..conftest import Net, run


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
