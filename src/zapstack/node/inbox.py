"""The node's consensus inbox: Corona traffic never delays the fast legs.

Contract
--------
:class:`Inbox` queues every authenticated consensus message (from peers'
streams and from ourselves) for the single consensus task.  Two classes,
FIFO within each: Corona messages (:data:`SLOW`) are handed out only when no
other message waits, so Corona's large round-1 traffic never delays the fast
legs, proposals or FINALs (round-2 responses, small, are ordinary messages).
``put`` never blocks (unbounded: the stream handlers already bound each
message); it and ``get`` belong to one event loop.
"""

from __future__ import annotations

import asyncio

from zapstack.node.wire import Message, MsgType

__all__ = ["SLOW", "Inbox"]

SLOW = frozenset({MsgType.CORONA_COMMIT, MsgType.CORONA_SIGNERS, MsgType.CORONA_PRECOMMIT})
"""Corona's large round-1 traffic (702 KB per commitment): handled only when nothing
else waits, so it never delays the fast legs, proposals or FINALs.  The 12.6 KB
round-2 response is not in it: with round 1 prepared ahead it is on the critical
path of the Corona leg."""


class Inbox:
    """The consensus inbox: FIFO per class, fast messages before Corona ones."""

    def __init__(self) -> None:
        self._queue: asyncio.PriorityQueue[tuple[int, int, Message]] = asyncio.PriorityQueue()
        self._seq = 0

    def put(self, msg: Message) -> None:
        self._seq += 1
        self._queue.put_nowait((msg.type in SLOW, self._seq, msg))

    async def get(self) -> Message:
        return (await self._queue.get())[2]

    def qsize(self) -> int:
        return self._queue.qsize()
