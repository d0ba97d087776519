"""An in-memory pair of transport sessions: no sockets, no QUIC, no event loop.

Contract
--------
:class:`LoopbackPair` wires a dialer :class:`~zapstack.transport.session.Session`
to a listener one and moves each side's commands to the other when
:meth:`LoopbackPair.pump` is called.  It models what the sessions rely on
from QUIC and nothing more:

* bytes of one stream arrive in order, optionally split into ``chunk``-sized
  pieces (``chunk=1`` feeds every handler byte by byte);
* a RESET_STREAM / STOP_SENDING / CONNECTION_CLOSE arrives after every byte
  sent before it (so data written before a reset is delivered: the "flushed
  cancel" of ``docs/formats/vectors-stream-reset.md``);
* stream credit: each side may open ``max_streams_*`` streams concurrently;
  a stream's credit returns to its opener once the receiver has forgotten it
  (QUIC MAX_STREAMS).

Events of each side are collected in ``dialer_events`` / ``listener_events``.
"""

from __future__ import annotations

from collections.abc import Mapping

from zapstack.transport.events import (
    CloseConnection,
    ResetStream,
    SendStream,
    SessionEvent,
    StopSending,
)
from zapstack.transport.handler import HandlerFactory
from zapstack.transport.session import Session
from zapstack.transport.streams import StreamType

__all__ = ["LoopbackPair"]


class _Side:
    __slots__ = ("events", "opened", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.events: list[SessionEvent] = []
        self.opened: dict[bool, list[int]] = {False: [], True: []}
        """Stream ids this side started sending on, per bidirectional flag."""


class LoopbackPair:
    """Two sessions wired in memory.  See the module contract."""

    def __init__(
        self,
        *,
        dialer_handlers: Mapping[StreamType, HandlerFactory] | None = None,
        listener_handlers: Mapping[StreamType, HandlerFactory] | None = None,
        max_streams_uni: int = 64,
        max_streams_bidi: int = 64,
        chunk: int = 0,
        require_auth: bool = False,
    ) -> None:
        self.dialer = Session(is_client=True, handlers=dialer_handlers or {})
        self.listener = Session(
            is_client=False, handlers=listener_handlers or {}, require_auth=require_auth
        )
        self._sides = {id(self.dialer): _Side(self.dialer), id(self.listener): _Side(self.listener)}
        self._limits = {False: max_streams_uni, True: max_streams_bidi}
        self._chunk = chunk
        self._refresh_credit()

    @property
    def dialer_events(self) -> list[SessionEvent]:
        """Every event the dialer's session emitted so far."""
        return self._sides[id(self.dialer)].events

    @property
    def listener_events(self) -> list[SessionEvent]:
        """Every event the listener's session emitted so far."""
        return self._sides[id(self.listener)].events

    def pump(self, max_rounds: int = 10_000) -> int:
        """Move commands both ways until both sides are quiet; return commands moved."""
        moved = 0
        for _ in range(max_rounds):
            step = self._move(self.dialer, self.listener) + self._move(self.listener, self.dialer)
            self._refresh_credit()
            self._collect()
            if step == 0:
                return moved
            moved += step
        raise RuntimeError("loopback did not settle")  # a sessions bug, never the input's

    def _move(self, src: Session, dst: Session) -> int:
        side = self._sides[id(src)]
        count = 0
        while (command := src.next_command()) is not None:
            count += 1
            if isinstance(command, SendStream):
                opened = side.opened[command.stream_id & 2 == 0]
                if command.stream_id not in opened:
                    opened.append(command.stream_id)
                self._deliver(dst, command)
            elif isinstance(command, ResetStream):
                dst.stream_reset(command.stream_id, command.code)
            elif isinstance(command, StopSending):
                dst.stop_sending(command.stream_id, command.code)
            elif isinstance(command, CloseConnection):
                dst.connection_terminated(command.code, command.reason)
            # RequestCredit: credit is recomputed after every round anyway.
        return count

    def _deliver(self, dst: Session, command: SendStream) -> None:
        data = command.data
        if self._chunk <= 0 or len(data) <= self._chunk:
            dst.stream_data(command.stream_id, data, command.fin)
            return
        for start in range(0, len(data), self._chunk):
            piece = data[start : start + self._chunk]
            last = start + self._chunk >= len(data)
            dst.stream_data(command.stream_id, piece, command.fin and last)

    def _refresh_credit(self) -> None:
        for src, dst in ((self.dialer, self.listener), (self.listener, self.dialer)):
            side = self._sides[id(src)]
            alive = set(dst.open_streams())
            credit = {}
            for bidi in (False, True):
                gone = sum(1 for sid in side.opened[bidi] if sid not in alive)
                credit[bidi] = self._limits[bidi] + gone
            src.set_credit(uni=credit[False], bidi=credit[True])

    def _collect(self) -> None:
        for side in self._sides.values():
            while (event := side.session.next_event()) is not None:
                side.events.append(event)
