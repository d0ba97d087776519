"""The submitter's side of TX_SUBMIT: send one tx, read the node's answer.

Contract
--------
:func:`submit_tx` opens one bidirectional ``TX_SUBMIT`` stream on a
connection, writes the tx frame and FIN, and returns the node's verdict as a
:class:`~zapstack.mempool.answer.SubmitAnswer` (``docs/formats/streams.md``
§TX_SUBMIT answer):

* the 37-byte answer record (admitted, or rejected at stage 5 with its code,
  plus the node's credit);
* or, when the node reset the stream (a frame refused at stages 1-4, a
  deferred signature check that failed, a stalled stream), an answer carrying
  the reset's code, ``tx_id == b""`` and no credit.

A connection that ends, a malformed answer, or no answer within ``timeout``
raises :class:`~zapstack.errors.TransportError`: the submit *failed*, the tx
may or may not be in the pool (resubmit the same frame: a second copy is
answered ``DUPLICATE``).  :class:`AnswerReader` is the reply handler, usable on
its own.  Concurrency: the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from zapstack.errors import TransportError, WireCode, ZapError
from zapstack.mempool.answer import ANSWER_SIZE, SubmitAnswer, decode_answer
from zapstack.transport.driver import Peer
from zapstack.transport.events import End, HandlerAction, Reject
from zapstack.transport.handler import NO_ACTIONS
from zapstack.transport.streams import StreamType

__all__ = ["AnswerReader", "submit_tx"]

_RESET_ENDS = frozenset({End.RESET, End.STOPPED, End.REJECTED})
"""How a receiving half ends when the node refused the stream (its code is the answer)."""


class AnswerReader:
    """Reply handler of one TX_SUBMIT stream: resolves ``future`` with the answer."""

    __slots__ = ("buf", "future")

    def __init__(self, future: asyncio.Future[SubmitAnswer]) -> None:
        self.future = future
        self.buf = bytearray()

    def _fail(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        if len(self.buf) + len(data) > ANSWER_SIZE:
            self._fail(TransportError("answer too long", code=WireCode.BAD_LENGTH))
            return (Reject(WireCode.BAD_LENGTH),)
        self.buf += data
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        try:
            answer = decode_answer(bytes(self.buf))
        except ZapError as exc:
            self._fail(TransportError(f"bad answer: {exc}", code=WireCode.BAD_FIELD))
            return NO_ACTIONS
        if not self.future.done():
            self.future.set_result(answer)
        return NO_ACTIONS

    def on_terminated(self, end: End, code: int | None) -> None:
        if end in _RESET_ENDS and code is not None and code in WireCode._value2member_map_:
            if not self.future.done():
                self.future.set_result(SubmitAnswer(WireCode(code), b"", 0))
            return
        self._fail(TransportError(f"TX_SUBMIT ended: {end.value} {code}", code=WireCode.INTERNAL))


async def submit_tx(peer: Peer, frame: bytes, *, timeout: float = 10.0) -> SubmitAnswer:
    """Submit ``frame`` on a new TX_SUBMIT stream of ``peer``; the node's answer."""
    future: asyncio.Future[SubmitAnswer] = asyncio.get_running_loop().create_future()
    try:
        out = await peer.open_stream(StreamType.TX_SUBMIT, AnswerReader(future))
        with contextlib.suppress(ZapError):  # a refusal may end our half first: the
            await out.finish(frame)  # answer (or the connection's end) says why
        return await asyncio.wait_for(future, timeout)
    except TimeoutError as exc:
        raise TransportError("no answer to TX_SUBMIT", code=WireCode.TIMEOUT) from exc
    except ZapError as exc:
        if isinstance(exc, TransportError):
            raise
        raise TransportError(f"TX_SUBMIT failed: {exc}", code=WireCode.INTERNAL) from exc
    finally:
        if not future.done():
            future.cancel()
