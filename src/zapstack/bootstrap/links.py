"""Glue between the bootstrap cores and sans-IO transport sessions (no asyncio).

Contract
--------
* :class:`ClientLinks` runs one :class:`~zapstack.bootstrap.client.BootstrapClient`
  over one :class:`~zapstack.transport.session.Session` per peer.  Register
  :meth:`ClientLinks.handlers` (the three push stream types) on each session,
  :meth:`attach` it, and call :meth:`flush` after every batch of inputs: it
  executes the client's commands (``open_stream`` + request + FIN with a reply
  handler; ``cancel_write`` + ``stop_reading`` for a cancelled request;
  ``stop_reading`` for a stopped push) and retries writes that waited for
  stream credit.
* :class:`ServerLink` serves one peer's session from a
  :class:`~zapstack.bootstrap.server.BootstrapServer`: request handlers for
  STATE_CHUNK / HEADER_RANGE, and :meth:`ServerLink.flush` writes the
  server's pushes (one stream per channel, in order).

Stream ends map to the client as: FIN -> ``response_end`` / ``push_end``;
RESET / STOP -> ``response_reset`` / ``push_reset``; connection gone
(``End.ABORTED``) -> ``peer_lost``.  Both classes are single-threaded, like
the sessions; the same handlers serve the asyncio driver.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from zapstack.bootstrap.client import BootstrapClient
from zapstack.bootstrap.events import CancelRequest, OpenRequest, StopPush
from zapstack.bootstrap.server import BootstrapServer, Push
from zapstack.errors import LocalProtocolError
from zapstack.transport.events import End, HandlerAction
from zapstack.transport.handler import NO_ACTIONS, HandlerFactory, StreamInfo
from zapstack.transport.session import Session
from zapstack.transport.streams import StreamType

__all__ = ["PUSH_TYPES", "REQUEST_TYPES", "ClientLinks", "ServerLink"]

Clock = Callable[[], float]

PUSH_TYPES = (StreamType.BLOCK_PUSH, StreamType.MEMPOOL_GOSSIP, StreamType.VOTE)
"""Stream types a bootstrapping node accepts from its peers."""
REQUEST_TYPES = (StreamType.STATE_CHUNK, StreamType.HEADER_RANGE)
"""Stream types a bootstrap server answers."""


class ReplyHandler:
    """Feeds one request stream's reply into the client."""

    def __init__(self, client: BootstrapClient, clock: Clock, req_id: int, peer: bytes) -> None:
        self.client, self.clock, self.req_id, self.peer = client, clock, req_id, peer

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        self.client.response_data(self.req_id, data, self.clock())
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        self.client.response_end(self.req_id, self.clock())
        return NO_ACTIONS

    def on_terminated(self, end: End, code: int | None) -> None:
        if end is End.ABORTED:
            self.client.peer_lost(self.peer, self.clock())
        else:
            self.client.response_reset(self.req_id, code or 0, self.clock())


class PushHandler:
    """Feeds one push stream (BLOCK_PUSH / MEMPOOL_GOSSIP / VOTE) into the client."""

    def __init__(self, client: BootstrapClient, clock: Clock, peer: bytes, info: StreamInfo):
        self.client, self.clock, self.peer, self.info = client, clock, peer, info

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        info = self.info
        self.client.push_data(self.peer, info.stream_type, info.stream_id, data, self.clock())
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        self.client.push_end(self.peer, self.info.stream_id, self.clock())
        return NO_ACTIONS

    def on_terminated(self, end: End, code: int | None) -> None:
        if end is End.ABORTED:
            self.client.peer_lost(self.peer, self.clock())
        else:
            self.client.push_reset(self.peer, self.info.stream_id, code or 0, self.clock())


class ClientLinks:
    """Runs a :class:`BootstrapClient` over per-peer sessions (module contract)."""

    def __init__(self, client: BootstrapClient, clock: Clock) -> None:
        self.client = client
        self.clock = clock
        self.sessions: dict[bytes, Session] = {}
        self.streams: dict[int, tuple[bytes, int]] = {}
        """Request id -> (peer, stream id)."""
        self._unsent: dict[int, bytes] = {}

    def handlers(self, peer: bytes) -> dict[StreamType, HandlerFactory]:
        """Handler factories to register on ``peer``'s session."""
        client, clock = self.client, self.clock
        return {t: (lambda info: PushHandler(client, clock, peer, info)) for t in PUSH_TYPES}

    def attach(self, peer: bytes, session: Session) -> None:
        """Start bootstrapping from ``peer`` over ``session`` (commands wait for :meth:`flush`)."""
        self.sessions[peer] = session
        self.client.add_peer(peer, self.clock())

    def flush(self) -> None:
        """Execute pending client commands; retry writes that waited for credit."""
        while (cmd := self.client.next_command()) is not None:
            if isinstance(cmd, OpenRequest):
                self._open(cmd)
            elif isinstance(cmd, CancelRequest):
                self._unsent.pop(cmd.req_id, None)
                peer_sid = self.streams.pop(cmd.req_id, None)
                if peer_sid is not None and peer_sid[0] in self.sessions:
                    session = self.sessions[peer_sid[0]]
                    session.cancel_write(peer_sid[1], cmd.code)
                    session.stop_reading(peer_sid[1], cmd.code)
            elif isinstance(cmd, StopPush) and cmd.peer in self.sessions:
                self.sessions[cmd.peer].stop_reading(cmd.stream_id, cmd.code)
        for req_id in list(self._unsent):
            peer, sid = self.streams[req_id]
            if self.sessions[peer].is_writable(sid):
                self.sessions[peer].send(sid, self._unsent.pop(req_id), fin=True)

    def _open(self, cmd: OpenRequest) -> None:
        session = self.sessions.get(cmd.peer)
        if session is None or session.closed:
            self.client.peer_lost(cmd.peer, self.clock())
            return
        handler = ReplyHandler(self.client, self.clock, cmd.req_id, cmd.peer)
        sid = session.open_stream(cmd.stream_type, handler)
        self.streams[cmd.req_id] = (cmd.peer, sid)
        if session.is_writable(sid):
            session.send(sid, cmd.data, fin=True)
        else:
            self._unsent[cmd.req_id] = cmd.data


class ServerLink:
    """Serves one peer's session from a :class:`BootstrapServer` (module contract)."""

    def __init__(self, server: BootstrapServer, peer: bytes) -> None:
        self.server = server
        self.peer = peer
        self.session: Session | None = None
        self._channels: dict[int, int] = {}
        self._queue: deque[Push] = deque()

    def handlers(self) -> dict[StreamType, HandlerFactory]:
        """Handler factories for the request stream types."""
        server, peer = self.server, self.peer
        return {t: (lambda info: server.handler(peer, info.stream_type)) for t in REQUEST_TYPES}

    def attach(self, session: Session) -> None:
        """The peer's session (pushes are written on it)."""
        self.session = session

    def flush(self) -> None:
        """Write queued pushes, in order, as far as stream credit allows."""
        session = self.session
        if session is None:
            return
        if session.closed:
            self.server.peer_gone(self.peer)
            return
        while (push := self.server.next_push(self.peer)) is not None:
            self._queue.append(push)
        while self._queue:
            push = self._queue[0]
            sid = self._channels.get(push.channel)
            if sid is None:
                sid = self._channels[push.channel] = session.open_stream(push.stream_type)
            if not session.is_writable(sid):
                if sid in session.open_streams() and session.send_end(sid) is None:
                    return  # waiting for stream credit
                self._queue.popleft()  # the subscriber stopped this stream: drop
                continue
            self._queue.popleft()
            try:
                session.send(sid, push.data, fin=push.fin)
            except LocalProtocolError:
                continue
            if push.fin:
                del self._channels[push.channel]
