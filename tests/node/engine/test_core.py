"""The engine's timer and dispatch: round changes, stale proposals, round timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from zapstack.errors import InvalidCert
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


def test_the_tick_never_waits_for_round1_preparation(net: Net) -> None:
    """Round 1 ahead is a background job, one at a time; the proposal goes out meanwhile."""
    g = net.genesis
    node = net.nodes[g.proposer_of(1, 0)]

    async def scenario() -> None:
        gate = asyncio.Event()
        started: list[object] = []

        async def held(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            started.append(fn)
            await gate.wait()
            return fn(*args, **kwargs)

        node.io.run_background = held  # type: ignore[method-assign]
        await node.tick()  # starts the preparation, does not wait for it
        await asyncio.sleep(0)  # the job runs up to its (held) background work
        assert node.refilling is not None and not node.refilling.done() and started
        net.clock_ms += g.block_interval_ms  # our proposal is due
        await node.tick()
        assert node.stats["proposed"] == 1  # proposed while round 1 is still running
        assert len(started) == 1  # and no second preparation started beside it
        gate.set()
        await node.settle()
        assert node.presessions.commitment((1, 0)) is not None

    run(scenario())


def test_a_background_job_that_crashes_halts_the_engine(net: Net) -> None:
    node = net.nodes[0]

    async def scenario() -> None:
        async def boom() -> None:
            raise OSError(28, "No space left on device")

        async def protocol_error() -> None:
            raise InvalidCert("a bad upgrade")

        node.spawn(protocol_error())
        await node.settle()
        await node.tick()  # a protocol error in a job is dropped with a warning
        node.spawn(boom())
        await node.settle()
        with pytest.raises(OSError, match="No space"):
            await node.tick()
        with pytest.raises(OSError):
            await node.handle(Message(MsgType.SHARE, 1, 0, 1, b""))

    run(scenario())
