"""A validator's connections: one QUIC connection per validator pair, plus clients.

Contract
--------
* Validators with a lower index dial the higher ones (:meth:`Connections.dial_loop`,
  redialled whenever the connection is gone); every inbound connection from a
  genesis validator replaces the one held for it (:meth:`Connections.accept_loop`),
  any other peer is a client (a light client, a bootstrapping node).
* A restarted validator dials the validators below it once
  (:meth:`Connections.rejoin`): they still hold a connection to its previous
  process, which QUIC only declares dead at the idle timeout.
* Every connection of the attached endpoint enforces the node's stream bounds
  (:mod:`zapstack.node.limits`): a peer that breaks one is disconnected.
* :meth:`Connections.send` writes one whole message on a fresh stream; a
  failed send is logged and dropped (consensus retries by rounds, gossip by
  the next batch).  No method raises on a dead peer.

All methods belong to the node's event loop.  The endpoint is attached by
:meth:`Connections.attach` when the node starts serving; the loops and sends
need it, the lookups (:meth:`find`, :meth:`live`) do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from zapstack.errors import TransportError, ZapError
from zapstack.node.config import DIAL_RETRY_S
from zapstack.node.genesis import Genesis
from zapstack.node.limits import node_limits
from zapstack.transport.driver import Endpoint, Peer
from zapstack.transport.streams import StreamType

__all__ = ["Connections"]

log = logging.getLogger("zapstack.node")

REJOIN_TRIES = 20
"""Dials of a lower validator a restarted node makes before leaving it to that side."""


class Connections:
    """The node's validator connections (by index) and its client connections."""

    def __init__(self, genesis: Genesis, me: int) -> None:
        self.g = genesis
        self.me = me
        self.by_node_id = {a.node_id: a.index for a in genesis.addresses}
        """Transport node id -> validator index."""
        self.peers: dict[int, Peer] = {}
        """Validator index -> its (latest) connection."""
        self.clients: list[Peer] = []
        """The connections from peers that are not genesis validators (closed ones are
        dropped as new ones come: wallets and load generators come and go for good)."""
        self.endpoint: Endpoint | None = None

    def attach(self, endpoint: Endpoint) -> None:
        """The endpoint the loops accept on and dial from; it enforces the node's
        stream bounds (:func:`~zapstack.node.limits.node_limits`) on every connection."""
        self.endpoint = endpoint
        endpoint.limits = node_limits(self.g)

    def _endpoint(self) -> Endpoint:
        assert self.endpoint is not None, "Connections.attach first"
        return self.endpoint

    # ------------------------------------------------------------------ lookups
    def live(self) -> list[Peer]:
        """The validator connections that are still open."""
        return [p for p in self.peers.values() if not p.session.closed]

    def connected(self) -> list[int]:
        """Indexes of the validators we hold an open connection to, ascending."""
        return sorted(i for i, p in self.peers.items() if not p.session.closed)

    def find(self, node_id: bytes) -> Peer | None:
        """A live connection to ``node_id`` (validator or client), newest first."""
        for p in [*reversed(self.clients), *self.peers.values()]:
            if p.node_id == node_id and not p.session.closed:
                return p
        return None

    def stop_stream(self, peer: bytes, stream_id: int, code: int) -> None:
        """Refuse ``stream_id`` (both halves) on every connection to ``peer``."""
        for p in [*self.peers.values(), *self.clients]:
            if p.node_id == peer:
                p.refuse(stream_id, code)

    def reply_stream(self, peer: bytes, stream_id: int, record: bytes) -> None:
        """Answer ``stream_id`` (``record``, then FIN) on the live connection to ``peer``
        that still has it open (a TX_SUBMIT answer after a deferred verdict)."""
        for p in [*self.peers.values(), *self.clients]:
            if p.node_id == peer and p.session.is_writable(stream_id):
                p.reply(stream_id, record)
                return

    # -------------------------------------------------------------------- send
    async def send(self, to: int, stream: StreamType, data: bytes) -> None:
        """One whole message to validator ``to`` on a new stream (dropped if down)."""
        peer = self.peers.get(to)
        if peer is None or peer.session.closed:
            return
        try:
            out = await peer.open_stream(stream)
            await out.finish(data)
        except (TransportError, ZapError) as exc:
            log.info("send to %d failed: %s", to, exc)

    # ------------------------------------------------------------------- loops
    async def accept_loop(self) -> None:
        """File every inbound connection as a validator's or a client's."""
        endpoint = self._endpoint()
        while True:
            self.file_inbound(await endpoint.inbound.get())

    def file_inbound(self, peer: Peer) -> None:
        """File an inbound connection as a validator's or a client's; forget closed clients."""
        index = self.by_node_id.get(peer.node_id)
        if index is not None and index != self.me:
            self.peers[index] = peer
            return
        self.clients = [p for p in self.clients if not p.session.closed]
        self.clients.append(peer)

    async def dial_loop(self, j: int) -> None:
        """Keep a connection to validator ``j`` (above us) open, redialling forever."""
        endpoint = self._endpoint()
        addr = self.g.addresses[j]
        while True:
            peer = self.peers.get(j)
            if peer is None or peer.session.closed:
                try:
                    self.peers[j] = await endpoint.dial(addr.host, addr.port, addr.node_id)
                except (TransportError, OSError):
                    await asyncio.sleep(DIAL_RETRY_S)
                    continue
            await asyncio.sleep(DIAL_RETRY_S)

    async def rejoin(self, j: int) -> None:
        """A restarted validator dials validator ``j`` (below it) once: ``j`` still holds a
        connection to our previous process, which QUIC only declares dead at the idle
        timeout (30 s); our new connection replaces it at once (:meth:`accept_loop`)."""
        endpoint = self._endpoint()
        addr = self.g.addresses[j]
        for _ in range(REJOIN_TRIES):
            try:
                self.peers[j] = await endpoint.dial(addr.host, addr.port, addr.node_id)
                return
            except (TransportError, OSError):
                await asyncio.sleep(DIAL_RETRY_S)

    async def dial_once(self, j: int) -> None:
        """Connect to validator ``j`` unless a live connection exists (bounded)."""
        endpoint = self._endpoint()
        peer = self.peers.get(j)
        if peer is None or peer.session.closed:
            a = self.g.addresses[j]
            with contextlib.suppress(TransportError, OSError):
                self.peers[j] = await endpoint.dial(a.host, a.port, a.node_id)
