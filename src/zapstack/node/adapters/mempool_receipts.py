"""Admit receipts on the submitting node: frames back from ``MEMPOOL_GOSSIP``.

Contract
--------
The submitter side of :mod:`zapstack.node.adapters.mempool_quic` (receipts
pushed by :class:`~zapstack.node.adapters.mempool_quic.TxAdmitServer` with
``receipts=True``; ``docs/formats/mempool.md`` §Admit receipts).

* :class:`FrameSplitter` is sans-IO: it splits back-to-back ZAP frames by the
  length field of their header, fed any split of the stream.
* :class:`ReceiptTracker` is the ``MEMPOOL_GOSSIP`` handler factory that runs a
  splitter per stream and resolves the future :meth:`ReceiptTracker.expect`
  returned for each frame (a frame that arrives first is remembered).

Concurrency: one event loop (the tracker's futures and ``changed`` event
belong to it).  Unwind: a stream that ends early drops its partial frame;
nothing else is held.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator, Mapping, Sequence

from zapstack.errors import RemoteProtocolError, Stage, WireCode
from zapstack.transport.events import End, HandlerAction
from zapstack.transport.handler import NO_ACTIONS, HandlerFactory, StreamHandler, StreamInfo
from zapstack.transport.streams import StreamType
from zapstack.zap import MAX_TX_SIZE
from zapstack.zap.schema import HEADER_SIZE

__all__ = ["FrameSplitter", "ReceiptTracker"]

_LEN = struct.Struct("<I")
_LENGTH_END = 12  # header bytes 8..11: the frame's total length, u32 LE


class FrameSplitter:
    """Splits back-to-back ZAP frames (MEMPOOL_GOSSIP content) by their header length.

    Sans-IO: :meth:`feed` any split of the stream, :meth:`end` at FIN.  Only the
    length field is read (bytes 8..11, u32 LE); a length below the 21-byte
    header or above ``MAX_TX_SIZE`` is :class:`~zapstack.errors.RemoteProtocolError`
    ``BAD_LENGTH``, leftover bytes at FIN are ``TRUNCATED``.
    """

    __slots__ = ("_buf", "_offset")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._offset = 0  # bytes of the stream consumed before _buf

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return every frame it completes, in order."""
        self._buf += data
        return list(self._frames())

    def _frames(self) -> Iterator[bytes]:
        buf = self._buf
        while len(buf) >= _LENGTH_END:
            total = _LEN.unpack_from(buf, 8)[0]
            if not HEADER_SIZE <= total <= MAX_TX_SIZE:
                raise RemoteProtocolError(
                    f"gossip frame length {total}", code=WireCode.BAD_LENGTH,
                    stage=Stage.HEADER, offset=self._offset + 11,
                )  # fmt: skip
            if len(buf) < total:
                return
            yield bytes(buf[:total])
            del buf[:total]
            self._offset += total

    def end(self) -> None:
        """FIN: raises ``TRUNCATED`` if a frame was left incomplete."""
        if self._buf:
            raise RemoteProtocolError(
                f"{len(self._buf)} bytes of an incomplete frame at FIN",
                code=WireCode.TRUNCATED, stage=Stage.BODY,
                offset=self._offset + len(self._buf),
            )  # fmt: skip


class ReceiptTracker:
    """``MEMPOOL_GOSSIP`` handler factory of a submitter: matches receipts to txs."""

    def __init__(self) -> None:
        self.received = 0
        """Frames received on gossip streams."""
        self.changed = asyncio.Event()
        """Set whenever a frame arrives."""
        self._waiting: dict[bytes, asyncio.Future[None]] = {}
        self._early: set[bytes] = set()

    @property
    def handlers(self) -> Mapping[StreamType, HandlerFactory]:
        """The endpoint handlers this tracker provides (``MEMPOOL_GOSSIP``)."""
        return {StreamType.MEMPOOL_GOSSIP: self.factory}

    def expect(self, frame: bytes) -> asyncio.Future[None]:
        """A future resolved when ``frame`` comes back (immediately if it already did)."""
        future = asyncio.get_running_loop().create_future()
        if frame in self._early:
            self._early.discard(frame)
            future.set_result(None)
        else:
            self._waiting[frame] = future
        return future

    def factory(self, info: StreamInfo) -> StreamHandler:
        """The ``HandlerFactory`` for ``StreamType.MEMPOOL_GOSSIP``."""
        return _ReceiptHandler(self)

    def _frame(self, frame: bytes) -> None:
        self.received += 1
        self.changed.set()
        future = self._waiting.pop(frame, None)
        if future is None:
            self._early.add(frame)
        elif not future.done():
            future.set_result(None)


class _ReceiptHandler:
    __slots__ = ("splitter", "tracker")

    def __init__(self, tracker: ReceiptTracker) -> None:
        self.tracker = tracker
        self.splitter = FrameSplitter()

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        for frame in self.splitter.feed(data):
            self.tracker._frame(frame)
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        self.splitter.end()
        return NO_ACTIONS

    def on_terminated(self, end: End, code: int | None) -> None:
        return None
