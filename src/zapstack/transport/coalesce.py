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
        self._held: dict[int, tuple[list[bytes], bool]] = {}
        """stream id -> (its pieces in order, FIN seen), in first-arrival order."""

    def __bool__(self) -> bool:
        return bool(self._held)

    def add(self, stream_id: int, data: bytes, fin: bool) -> None:
        """One data event of the library (``fin``: the stream's last byte is in ``data``)."""
        held = self._held.get(stream_id)
        if held is None:
            self._held[stream_id] = ([data], fin)
        else:
            held[0].append(data)
            if fin:
                self._held[stream_id] = (held[0], True)

    def drain(self) -> list[tuple[int, bytes, bool]]:
        """Everything held, merged per stream, and forget it."""
        held, self._held = self._held, {}
        return [
            (sid, parts[0] if len(parts) == 1 else b"".join(parts), fin)
            for sid, (parts, fin) in held.items()
        ]
