"""The stream-id space of one QUIC connection (RFC 9000 §2.1): ours, the peer's, credit.

:class:`StreamIds` allocates the ids of the streams we open (client-initiated
ids are even, server-initiated odd; bit 1 marks unidirectional; each kind
counts up by 4), tracks the peer's cumulative MAX_STREAMS credit per kind and
the FIFO of our opens waiting for it, and decides which peer-opened ids are
new.  Peer stream ids open in order but their first bytes may arrive out of
order, so it keeps the highest peer index seen per kind plus the set of lower
indices not seen yet (bounded by the stream limit): any other id at or below
it belongs to a forgotten stream, whose late frames are ignored.

Pure bookkeeping for :class:`~zapstack.transport.session.Session`: no IO,
single-threaded.
"""

from __future__ import annotations

from collections import deque

__all__ = ["StreamIds", "is_bidi"]


def is_bidi(stream_id: int) -> bool:
    """Whether ``stream_id`` is a bidirectional stream (bit 1 clear)."""
    return stream_id & 2 == 0


class StreamIds:
    """Stream ids, credit and queued opens of one connection (see the module docstring)."""

    def __init__(self, *, is_client: bool) -> None:
        self.is_client = is_client
        self._next_local = {False: 2 if is_client else 3, True: 0 if is_client else 1}
        self._credit = {False: 0, True: 0}
        self._queued: dict[bool, deque[int]] = {False: deque(), True: deque()}
        self._max_remote_seen = {False: -1, True: -1}
        self._unseen: dict[bool, set[int]] = {False: set(), True: set()}

    # ------------------------------------------------------------ ours

    def allocate(self, bidi: bool) -> int:
        """The id of the next stream we open of this kind."""
        stream_id = self._next_local[bidi]
        self._next_local[bidi] += 4
        return stream_id

    def may_open(self, stream_id: int) -> bool:
        """Whether our new stream ``stream_id`` is within credit and no earlier open waits."""
        bidi = is_bidi(stream_id)
        return stream_id // 4 < self._credit[bidi] and not self._queued[bidi]

    def enqueue(self, stream_id: int) -> bool:
        """Queue an open until credit arrives; True if the queue of its kind was empty."""
        queue = self._queued[is_bidi(stream_id)]
        first = not queue
        queue.append(stream_id)
        return first

    def dequeue(self, stream_id: int) -> None:
        """Withdraw a queued open (it was cancelled before it got credit)."""
        self._queued[is_bidi(stream_id)].remove(stream_id)

    def queued(self, bidi: bool) -> int:
        """Opens of this kind waiting for credit."""
        return len(self._queued[bidi])

    def raise_credit(self, *, uni: int, bidi: int) -> list[int]:
        """The peer's cumulative MAX_STREAMS; the queued opens it releases, in order."""
        released: list[int] = []
        for kind, value in ((False, uni), (True, bidi)):
            self._credit[kind] = max(self._credit[kind], value)
            queue = self._queued[kind]
            while queue and queue[0] // 4 < self._credit[kind]:
                released.append(queue.popleft())
        return released

    def clear(self) -> None:
        """Drop every queued open (the connection ended)."""
        for queue in self._queued.values():
            queue.clear()

    # ------------------------------------------------------------ the peer's

    def admit_remote(self, stream_id: int) -> bool:
        """Whether ``stream_id`` is a peer stream seen for the first time."""
        if (stream_id & 1) == (0 if self.is_client else 1):
            return False  # one of ours
        bidi = is_bidi(stream_id)
        index, seen = stream_id // 4, self._max_remote_seen[bidi]
        if index > seen:
            # opening stream n implicitly opens every lower one (RFC 9000 §2.1);
            # their first bytes may still arrive later: remember the gap
            self._unseen[bidi].update(range(seen + 1, index))
            self._max_remote_seen[bidi] = index
            return True
        if index in self._unseen[bidi]:
            self._unseen[bidi].discard(index)
            return True
        return False  # forgotten stream: late frames are ignored
