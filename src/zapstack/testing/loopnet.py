"""An in-memory bootstrap network: one client, N servers, a mock clock (test/bench kit).

Each server peer is wired to the client by its own
:class:`~zapstack.testing.loopback.LoopbackPair` (the client is the dialer),
so every byte crosses real transport sessions: stream-type dispatch, stream
credit, resets and stop-sending behave as over QUIC, minus packets and time.
Time only moves in :meth:`LoopNet.advance`, which fires the client's timer.
Deterministic: no randomness, no threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from zapstack.bootstrap.client import BootstrapClient
from zapstack.bootstrap.events import Event
from zapstack.bootstrap.links import ClientLinks, ServerLink
from zapstack.bootstrap.server import BootstrapServer
from zapstack.testing.loopback import LoopbackPair
from zapstack.transport.handler import HandlerFactory
from zapstack.transport.streams import StreamType

__all__ = ["LoopNet"]


class LoopNet:
    """Client + servers over loopback session pairs (see the module docstring)."""

    def __init__(self, client: BootstrapClient, *, chunk: int = 0) -> None:
        self.now = 0.0
        self.client = client
        self.links = ClientLinks(client, lambda: self.now)
        self.pairs: dict[bytes, LoopbackPair] = {}
        self.servers: dict[bytes, ServerLink] = {}
        self.events: list[Event] = []
        """Every client event, in order."""
        self._chunk = chunk

    def add_server(
        self,
        peer: bytes,
        server: BootstrapServer,
        *,
        override: Mapping[StreamType, HandlerFactory] | None = None,
        pump: bool = True,
    ) -> LoopbackPair:
        """Connect ``server`` as peer ``peer``; ``override`` replaces request handlers.

        With ``pump=False`` nothing moves until the next :meth:`pump` (connect
        several peers "at once")."""
        link = ServerLink(server, peer)
        handlers = link.handlers()
        handlers.update(override or {})
        pair = LoopbackPair(
            dialer_handlers=self.links.handlers(peer), listener_handlers=handlers, chunk=self._chunk
        )
        link.attach(pair.listener)
        self.pairs[peer], self.servers[peer] = pair, link
        self.links.attach(peer, pair.dialer)
        if pump:
            self.pump()
        return pair

    def pump(self, max_rounds: int = 100_000) -> None:
        """Move bytes and commands until everything is quiet."""
        for _ in range(max_rounds):
            self.links.flush()
            for link in self.servers.values():
                link.flush()
            moved = sum(pair.pump() for pair in self.pairs.values())
            while (event := self.client.next_event()) is not None:
                self.events.append(event)
            if moved == 0:
                return
        raise RuntimeError("loopnet did not settle")

    def advance(self, dt: float) -> None:
        """Move the clock by ``dt``, fire the client's timer, pump."""
        self.now += dt
        self.client.handle_timer(self.now)
        self.pump()

    def run_until(
        self, done: Callable[[], bool], *, step: float = 0.5, limit: float = 120.0
    ) -> None:
        """Advance in ``step``s until ``done()`` (AssertionError past ``limit`` s)."""
        self.pump()
        start = self.now
        while not done():
            if self.now - start > limit:
                raise AssertionError("loopnet: condition not reached in time")
            self.advance(step)

    def disconnect(self, peer: bytes) -> None:
        """Close ``peer``'s connection (both ends see every stream aborted)."""
        self.pairs[peer].listener.close()
        self.pump()
