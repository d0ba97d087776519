"""The node's consensus inbox: Corona traffic never delays the fast legs."""

import asyncio

from zapstack.node.inbox import Inbox
from zapstack.node.wire import Message, MsgType


def test_fast_messages_first_fifo_within_a_class() -> None:
    inbox = Inbox()
    order = [
        MsgType.CORONA_COMMIT,
        MsgType.SHARE,
        MsgType.CORONA_SIGNERS,
        MsgType.PROPOSAL,
        MsgType.CORONA_RESPONSE,
        MsgType.FINAL,
        MsgType.CORONA_PRECOMMIT,
    ]
    for i, kind in enumerate(order):
        inbox.put(Message(kind, 1, 0, i, b"x"))

    async def drain() -> list[int]:
        return [(await inbox.get()).sender for _ in order]

    # round-1 traffic (commit, signers, precommit) waits; the small round-2
    # response is on the Corona leg's critical path and goes with the fast class
    assert asyncio.run(drain()) == [1, 3, 4, 5, 0, 2, 6]
