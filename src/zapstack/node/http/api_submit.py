"""HTTP tx submission through the node's own TX_SUBMIT service (stages 1-5, same answer).

Contract
--------
* :class:`HttpSubmitter` plays one TX_SUBMIT stream per HTTP request into the
  node's :class:`~zapstack.mempool.handler.TxSubmitService`: the stream is
  opened with the handler factory, the frame is its data, the request's end
  is its FIN.  The answer is exactly what a QUIC submitter would get
  (``docs/formats/streams.md`` §TX_SUBMIT answer): the 45-byte record
  (admitted, or rejected at stage 5 with its code and credit), or, for a
  frame refused at stages 1-4, the reset code with an empty tx id and no
  credit.  Admitted txs land in the service's outbox like QUIC-admitted ones,
  so the node's tick loop caches their signature and gossips them.
* The synthetic peer id is ``b"http/" + client IP``: the receiver's
  reputation and stream keys are per HTTP client, and can never collide with
  a validator's 32-byte node id.  Stream ids count up by 4 (client
  bidirectional ids), one per request.
* A stream that had to wait for the receiver's buffer credit is answered
  later through the service's ``reply_stream`` / ``stop_stream`` callbacks:
  the submitter chains itself in front of them (verdicts for other peers go
  on to the original callbacks).  Such a wait is bounded by ``timeout``;
  past it the stream is reset (its credit returned) and :class:`TimeoutError`
  raised.
* Single event loop; no threads.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from zapstack.errors import WireCode
from zapstack.mempool.answer import SubmitAnswer, decode_answer
from zapstack.mempool.handler import TxSubmitService
from zapstack.transport.events import End, HandlerAction, Reject, Reply
from zapstack.transport.handler import StreamInfo
from zapstack.transport.streams import STREAM_TYPES, StreamType

__all__ = ["HTTP_PEER_PREFIX", "HttpSubmitter"]

HTTP_PEER_PREFIX = b"http/"
"""Peer ids of HTTP submitters start with this (node ids are 32 raw bytes)."""


class HttpSubmitter:
    """Submits frames to a :class:`TxSubmitService` as if over TX_SUBMIT streams."""

    def __init__(self, service: TxSubmitService) -> None:
        self.service = service
        self._ids = itertools.count(0, 4)
        self._waiting: dict[tuple[bytes, int], asyncio.Future[SubmitAnswer]] = {}
        self._next_stop = service.stop_stream
        self._next_reply = service.reply_stream
        service.stop_stream = self._stop
        service.reply_stream = self._reply

    async def submit(self, client: str, frame: bytes, *, timeout: float = 10.0) -> SubmitAnswer:
        """Run ``frame`` through stages 1-5 for ``client``; the node's answer."""
        peer = HTTP_PEER_PREFIX + client.encode()
        sid = next(self._ids)
        key = (peer, sid)
        spec = STREAM_TYPES[StreamType.TX_SUBMIT]
        info = StreamInfo(sid, StreamType.TX_SUBMIT, spec, local=False, peer=peer)
        future: asyncio.Future[SubmitAnswer] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            handler = self.service.factory(info)
            self._take(key, handler.on_data(frame))
            if not future.done():
                self._take(key, handler.on_end())
            if not future.done():  # waiting for buffer credit: answered by a callback
                try:
                    return await asyncio.wait_for(asyncio.shield(future), timeout)
                except TimeoutError:
                    handler.on_terminated(End.RESET, int(WireCode.TIMEOUT))
                    raise
            return future.result()
        finally:
            self._waiting.pop(key, None)

    def _take(self, key: tuple[bytes, int], actions: Sequence[HandlerAction]) -> None:
        for action in actions:
            if isinstance(action, Reply):
                self._resolve(key, decode_answer(action.data))
            elif isinstance(action, Reject):
                self._resolve(key, SubmitAnswer(WireCode(action.code), b"", 0))

    def _resolve(self, key: tuple[bytes, int], answer: SubmitAnswer) -> None:
        future = self._waiting.get(key)
        if future is not None and not future.done():
            future.set_result(answer)

    def _stop(self, peer: bytes, stream_id: int, code: int) -> None:
        if (peer, stream_id) in self._waiting:
            self._resolve((peer, stream_id), SubmitAnswer(WireCode(code), b"", 0))
        else:
            self._next_stop(peer, stream_id, code)

    def _reply(self, peer: bytes, stream_id: int, record: bytes) -> None:
        if (peer, stream_id) in self._waiting:
            self._resolve((peer, stream_id), decode_answer(record))
        else:
            self._next_reply(peer, stream_id, record)
