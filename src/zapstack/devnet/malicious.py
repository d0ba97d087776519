"""A malicious peer: a non-validator that sends only garbage to every validator.

:class:`MaliciousPeer` dials each validator of a devnet with its own throw-away
node id and, each period until stopped, alternately opens a TX_SUBMIT stream
carrying a malformed tx frame (bad magic, unknown kind or an offset overrun,
cut short), or a PROPOSAL / CERT_SHARES stream whose first byte is no message
type and a truncated CERT_SHARES message.  Consensus streams are for
validators only: a validator refuses them from this peer on the first byte
and disconnects it (docs/formats/streams.md §Limits), so the next round dials
again.  It counts what it sent and how each stream ended for it in
:class:`MaliciousStats` (``stopped``: STOP_SENDING on a live connection;
``cut_off``: the validator closed the connection under it); ``zap soak``
requires the bad tx frames to be stopped and the bad consensus streams to be
stopped or cut off, while the validators keep their links to each other.

It runs on asyncio over real QUIC; every dial is bounded (3 s) and a failed
send is skipped.  :meth:`MaliciousPeer.close` is safe to call in any state.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from zapstack.errors import TransportError, ZapError
from zapstack.node.genesis import Genesis, devnet_user
from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Endpoint, OutStream, Peer
from zapstack.transport.events import End
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.streams import StreamType
from zapstack.zap.frames import build_transfer

__all__ = ["MaliciousPeer", "MaliciousStats"]


_BAD_TYPE = b"\x63" + bytes(30)
"""A consensus stream whose first byte is no message type: stopped at byte 0."""
_BAD_TX = (
    lambda f: b"\x7fZIP" + f[4:],  # stage 1: magic
    lambda f: f[:4] + b"\x09" + f[5:],  # stage 2: kind
    lambda f: f[:21] + b"\xff\xff\x00\x00" + f[25:],  # stage 4: offset overrun
)


@dataclass(slots=True)
class MaliciousStats:
    """What the malicious peer sent and what happened to it."""

    sent: dict[str, int] = field(default_factory=dict)
    """Streams sent, by kind."""
    stopped: dict[str, int] = field(default_factory=dict)
    """Streams the validator stopped (the peer saw STOP_SENDING), by kind."""
    cut_off: dict[str, int] = field(default_factory=dict)
    """Streams whose connection the validator closed under them, by kind."""
    dials: int = 0

    def refused(self, kind: str) -> int:
        """Streams of ``kind`` the validator refused either way."""
        return self.stopped.get(kind, 0) + self.cut_off.get(kind, 0)


class MaliciousPeer:
    """A non-validator peer sending only garbage on tx and consensus streams."""

    def __init__(self, genesis: Genesis, binding: str = "qh3") -> None:
        self.g = genesis
        self.endpoint = Endpoint(BINDINGS[binding](), NodeIdentity.generate(), {})
        self.peers: dict[int, Peer] = {}
        self.stats = MaliciousStats()
        self.open: list[tuple[str, OutStream]] = []
        seed = bytes.fromhex(genesis.raw.get("devnet_seed", ""))
        self.user = devnet_user(seed, 63)
        self.k = 0

    async def _peer(self, i: int) -> Peer | None:
        peer = self.peers.get(i)
        if peer is not None and not peer.session.closed:
            return peer
        a = self.g.addresses[i]
        self.stats.dials += 1
        try:
            self.peers[i] = await asyncio.wait_for(self.endpoint.dial(a.host, a.port, a.node_id), 3)
        except (TransportError, OSError, TimeoutError):
            return None
        return self.peers[i]

    async def _send(
        self, peer: Peer, kind: str, stream: StreamType, data: bytes, fin: bool
    ) -> None:
        try:
            out = await peer.open_stream(stream)
            await out.write(data, fin=fin)
        except (TransportError, ZapError):
            return
        self.stats.sent[kind] = self.stats.sent.get(kind, 0) + 1
        self.open.append((kind, out))

    def _settle(self) -> None:
        still: list[tuple[str, OutStream]] = []
        for kind, out in self.open:
            end = out.end
            if end is None or end[0] is End.FIN:
                if end is None:
                    still.append((kind, out))
                continue
            tally = {End.STOPPED: self.stats.stopped, End.ABORTED: self.stats.cut_off}.get(end[0])
            if tally is not None:
                tally[kind] = tally.get(kind, 0) + 1
        self.open = still[-2000:]

    async def run(self, stop: asyncio.Event, period: float = 0.25) -> None:
        """Send one round of garbage to every validator each ``period`` s until ``stop``."""
        while not stop.is_set():
            for i in range(self.g.vset.n):
                peer = await self._peer(i)
                if peer is None:
                    continue
                self.k += 1
                if self.k % 2:  # a bad tx frame on a live connection: STOP_SENDING
                    frame = build_transfer(self.user, bytes(32), 1, 1, self.k, self.g.chain_id)
                    bad_tx = _BAD_TX[(self.k // 2) % len(_BAD_TX)](frame)
                    await self._send(peer, "tx frame", StreamType.TX_SUBMIT, bad_tx[:48], False)
                    continue
                stream = (StreamType.PROPOSAL, StreamType.CERT_SHARES)[(self.k // 2) % 2]
                await self._send(peer, "consensus type", stream, _BAD_TYPE, False)
                await self._send(peer, "consensus short", StreamType.CERT_SHARES, b"\x02\x01", True)
            self._settle()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
        await asyncio.sleep(0.5)
        self._settle()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.endpoint.close(), 5)
