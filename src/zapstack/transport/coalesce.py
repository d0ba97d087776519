"""Stream data of one library drain, merged per stream before the session sees it.

Contract
--------
A QUIC library hands its stream data over as one event per STREAM frame it
decoded.  When one stream has the connection to itself the library's core
merges consecutive frames, but as soon as two streams interleave (two replies
in flight on one connection) every packet becomes its own event, and each
event costs a full pass through the session, the stream's handler and its
consumer.  :class:`DataCoalescer` holds the data events of one drain (the
events a batch of datagrams produced, delivered in one loop step) and hands
them on merged: one ``(stream_id, data, fin)`` per stream, streams in the
order their first bytes arrived, each stream's bytes in order.
:class:`~zapstack.transport.peer.Peer` uses it for the replies on streams it
opened (a bootstrap client's requests); data on streams the peer opened is not
held (there merging saves nothing: its many streams rarely send two packets in
one drain, and holding costs ~0.8 µs per event).

It holds only what the library already delivered in this drain (the bytes its
event queue held; the library's flow control bounds them), and the caller
:meth:`drain` s it before anything else of the same drain is processed -- a
reset, a stop, the connection's end -- so no data is reordered against the
events that follow it, and every session bound is checked on the merged bytes
as it would be on the pieces (bounds are byte counts).  Sans-IO, no clock.
"""

from __future__ import annotations

__all__ = ["DataCoalescer"]


class DataCoalescer:
    """Per-stream merge of the data events of one drain (see the module docstring)."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[int, tuple[bytes | list[bytes], bool]] = {}
        """stream id -> (its one piece, or its pieces in order; FIN seen), in first-arrival
        order.  One piece per stream is the common case (many streams interleaved): it is
        kept as it is, with no list."""

    def __bool__(self) -> bool:
        return bool(self._held)

    def add(self, stream_id: int, data: bytes, fin: bool) -> None:
        """One data event of the library (``fin``: the stream's last byte is in ``data``)."""
        held = self._held
        prev = held.get(stream_id)
        if prev is None:
            held[stream_id] = (data, fin)
            return
        pieces, was_fin = prev
        if isinstance(pieces, list):
            pieces.append(data)
        else:
            pieces = [pieces, data]
        held[stream_id] = (pieces, fin or was_fin)

    def drain(self) -> list[tuple[int, bytes, bool]]:
        """Everything held, merged per stream, and forget it."""
        held, self._held = self._held, {}
        return [
            (sid, b"".join(pieces) if isinstance(pieces, list) else pieces, fin)
            for sid, (pieces, fin) in held.items()
        ]
