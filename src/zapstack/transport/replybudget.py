"""A connection's bound on the reply bytes the QUIC library still holds for its peer.

Contract
--------
A request a peer sends us (on a bidirectional stream it opened) is answered with a
reply, and the library keeps the reply's bytes until the peer's flow control lets them
out.  A peer that asks and never reads would make this node hold every reply it asked
for -- 64 streams of up to 16 MiB of state chunks each, over and over.
:class:`ReplyBudget` bounds that: before a reply's bytes go to the library,
:meth:`ReplyBudget.admit` adds up what the library still holds unsent of the replies
it admitted before (``backlog(stream_id)``, the library's per-stream send buffer; a
stream with nothing left, or one the library forgot, is dropped from the count) and
refuses the new bytes when that plus them would pass ``limit`` -- unless nothing is
held, so a reply larger than the budget still goes to a peer that reads.  What the
node keeps for one peer is therefore at most ``limit`` plus one reply.  The adapter
executes a refused reply as ``RESET_STREAM(RATE_LIMITED)`` (:mod:`.peer`).

Sans-IO: no clock, no library import; the adapter passes the backlog reader.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ReplyBudget"]


class ReplyBudget:
    """Unsent reply bytes of one connection, bounded by ``limit`` (see the module docstring)."""

    __slots__ = ("_local_bit", "_streams", "limit")

    def __init__(self, limit: int, *, local_bit: int) -> None:
        if limit < 0:
            raise ValueError("a reply budget cannot be negative")
        self.limit = limit
        """Unsent reply bytes past which a further reply is refused."""
        self._local_bit = local_bit
        self._streams: set[int] = set()

    def held(self, backlog: Callable[[int], int]) -> int:
        """Bytes of the admitted replies the library has not sent yet; streams with none
        left are forgotten."""
        total = 0
        for stream_id in list(self._streams):
            left = backlog(stream_id)
            if left > 0:
                total += left
            else:
                self._streams.discard(stream_id)
        return total

    def admit(self, stream_id: int, size: int, backlog: Callable[[int], int]) -> bool:
        """Whether ``size`` more bytes on ``stream_id`` may go to the library now (then the
        stream is counted from here on).  A stream we opened (bit 0 of its id is
        ``local_bit``: 0 for the QUIC client, 1 for the server) carries no reply: always."""
        if stream_id & 1 == self._local_bit:
            return True
        held = self.held(backlog)
        if held and held + size > self.limit:
            return False
        if size:
            self._streams.add(stream_id)
        return True

    @property
    def streams(self) -> int:
        """Streams whose replies were still being sent at the last count."""
        return len(self._streams)
