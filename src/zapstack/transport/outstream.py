"""Our sending side of a stream we opened on a :class:`~zapstack.transport.peer.Peer`.

:class:`OutStream` is a thin handle: every call is carried out by its peer (bounded
by the endpoint's ``op_timeout``; :class:`~zapstack.errors.TransportError` when the
connection fails under it).  :meth:`OutStream.cancel_write` is idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zapstack.transport.events import End
from zapstack.transport.streams import StreamType

if TYPE_CHECKING:
    from zapstack.transport.peer import Peer

__all__ = ["OutStream"]


class OutStream:
    """Our sending side of a stream we opened."""

    def __init__(self, peer: Peer, stream_id: int, stream_type: StreamType) -> None:
        self.peer = peer
        self.stream_id = stream_id
        self.stream_type = stream_type
        self.end: tuple[End, int | None] | None = None
        """How our sending side ended (FIN, cancelled, stopped by peer, aborted), once it
        did: set by the peer from the session's StreamEnded (the peer forgets the stream
        then; this object keeps it for as long as its owner does)."""

    async def write(self, data: bytes, *, fin: bool = False) -> None:
        """Queue ``data``; back off while the stream's backlog is over high water."""
        await self.peer._write(self.stream_id, data, fin)

    async def finish(self, data: bytes = b"") -> None:
        """Write ``data`` and FIN."""
        await self.peer._write(self.stream_id, data, True)

    async def cancel_write(self, code: int, *, flush: bool = True) -> None:
        """CancelWrite(code).  With ``flush`` (the default) first wait until every
        byte written so far is acknowledged, so the receiver is guaranteed to
        have been handed it (docs/formats/vectors-stream-reset.md).  Idempotent."""
        await self.peer._cancel(self.stream_id, code, flush)
