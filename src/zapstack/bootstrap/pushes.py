"""The push streams peers open to a bootstrapping node: BLOCK_PUSH, MEMPOOL_GOSSIP, VOTE.

:class:`PushStreams` keeps one incremental reader per ``(peer, stream id)``
(:mod:`zapstack.bootstrap.readers`).  Gossiped txs and vote records are
reported as soon as each is whole (:meth:`PushStreams.data`); a block push is
only checked early (magic, lengths) and yields its :class:`RangeRecord` at FIN
(:meth:`PushStreams.end`).  A BLOCK_PUSH or MEMPOOL_GOSSIP stream open longer
than ``push_timeout`` without FIN is due to be stopped (:meth:`PushStreams.expired`);
VOTE streams are long-lived and never expire.

Malformed bytes drop the stream and are reported to the caller (who stops it
or blames the peer).  Unwind: :meth:`PushStreams.reset`,
:meth:`PushStreams.drop_peer` and :meth:`PushStreams.clear` are idempotent and
discard partial buffers.  Single-threaded, no IO.
"""

from __future__ import annotations

from zapstack.bootstrap.events import TxGossiped, VoteReceived
from zapstack.bootstrap.readers import BlockPushReader, RangeRecord, TxGossipReader, VoteReader
from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.transport.streams import StreamType

__all__ = ["PushStreams"]

_PushReader = BlockPushReader | TxGossipReader | VoteReader
_PUSH_READERS: dict[StreamType, type[_PushReader]] = {
    StreamType.BLOCK_PUSH: BlockPushReader,
    StreamType.MEMPOOL_GOSSIP: TxGossipReader,
    StreamType.VOTE: VoteReader,
}
_TIMED_PUSHES = (StreamType.BLOCK_PUSH, StreamType.MEMPOOL_GOSSIP)


class PushStreams:
    """Readers of the open push streams (see the module docstring)."""

    def __init__(self, push_timeout: float) -> None:
        self.push_timeout = push_timeout
        self._streams: dict[tuple[bytes, int], tuple[_PushReader, float]] = {}

    def data(
        self, peer: bytes, stream_type: StreamType, stream_id: int, data: bytes, now: float
    ) -> tuple[list[TxGossiped | VoteReceived], WireCode | None]:
        """Feed push bytes: the records now whole, and the code to stop the stream with, if bad.

        A bad stream is forgotten; the records before the bad bytes still count.
        """
        key = (peer, stream_id)
        entry = self._streams.get(key)
        if entry is None:
            limit = now + self.push_timeout if stream_type in _TIMED_PUSHES else float("inf")
            entry = self._streams[key] = (_PUSH_READERS[stream_type](), limit)
        reader = entry[0]
        out: list[TxGossiped | VoteReceived] = []
        try:
            reader.receive_data(data)
            if not isinstance(reader, BlockPushReader):
                while (rec := reader.next_record()) is not None:
                    out.append(
                        VoteReceived(peer, stream_id, rec)
                        if isinstance(reader, VoteReader)
                        else TxGossiped(peer, rec)
                    )
            else:
                reader.next_record()  # early checks (magic, lengths)
        except RemoteProtocolError as exc:
            del self._streams[key]
            return out, exc.code
        return out, None

    def end(self, peer: bytes, stream_id: int) -> tuple[bool, RangeRecord | None]:
        """FIN: ``(known, block record)``; the record only for a block push.

        ``known`` is False for a stream never fed (or already dropped).  Raises
        RemoteProtocolError if the stream ended inside a record.
        """
        entry = self._streams.pop((peer, stream_id), None)
        if entry is None:
            return False, None
        reader = entry[0]
        if isinstance(reader, BlockPushReader):
            return True, reader.finish()
        reader.end_of_stream()
        return True, None

    def reset(self, peer: bytes, stream_id: int) -> None:
        """The peer reset the stream: drop its partial buffer.  Idempotent."""
        self._streams.pop((peer, stream_id), None)

    def drop_peer(self, peer: bytes) -> list[int]:
        """Forget every push stream of ``peer``; their ids, in arrival order."""
        sids = [sid for p, sid in self._streams if p == peer]
        for sid in sids:
            del self._streams[(peer, sid)]
        return sids

    def expired(self, now: float) -> list[tuple[bytes, int]]:
        """Forget and return the timed pushes open past their deadline (sorted)."""
        due = [key for key, (_, limit) in sorted(self._streams.items()) if limit <= now]
        for key in due:
            del self._streams[key]
        return due

    def next_deadline(self) -> float | None:
        """The earliest push deadline (VOTE streams have none)."""
        return min((t for (_, t) in self._streams.values() if t != float("inf")), default=None)

    def clear(self) -> None:
        """Forget every push stream."""
        self._streams.clear()
