"""A load generator: signed txs submitted over real QUIC TX_SUBMIT streams.

Each devnet user account (``genesis.devnet_user``) sends transfers with
consecutive nonces; every tx travels alone on its own unidirectional stream
(up to the transport's 64 concurrent streams per connection), round-robin
over the validators.  A fraction of streams can carry deliberately malformed
frames (the devnet's "malicious peer") to exercise the reject path; a
malformed tx does not consume its user's nonce.

It runs on the caller's event loop: one task per submitted tx, so a slow
validator never stalls the others; :meth:`LoadGenerator.run` gives in-flight
sends up to 5 s after ``stop`` and :meth:`LoadGenerator.close` closes the one
endpoint (bounded, 5 s).  A send that fails is counted, never retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass, field

from zapstack.errors import TransportError, ZapError
from zapstack.node.genesis import Genesis, devnet_user
from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Endpoint, Peer
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.streams import StreamType
from zapstack.zap.frames import build_transfer
from zapstack.zap.sigschemes import Signer

__all__ = ["LoadGenerator", "LoadStats"]

_BAD_FRAMES = (
    lambda f: b"\x7fZIP" + f[4:],  # stage 1: magic
    lambda f: f[:4] + b"\x09" + f[5:],  # stage 2: unknown kind
    lambda f: f[:5] + b"\x02" + f[6:],  # stage 3: version
    lambda f: f[:21] + b"\xff\xff\x00\x00" + f[25:],  # stage 4: offset overrun
    lambda f: f[:-1] + bytes([f[-1] ^ 1]),  # stage 4: bad signature
)


@dataclass(slots=True)
class LoadStats:
    """What the generator did."""

    sent: int = 0
    malformed: int = 0
    failed: int = 0
    per_validator: dict[int, int] = field(default_factory=dict)


class LoadGenerator:
    """Submits ``rate`` txs/s (approximately) until stopped."""

    def __init__(
        self,
        genesis: Genesis,
        *,
        users: int = 64,
        rate: float = 200.0,
        malformed_every: int = 0,
        seed: int = 1,
    ) -> None:
        self.g = genesis
        devnet_seed = bytes.fromhex(genesis.raw.get("devnet_seed", ""))
        self.users: list[Signer] = [devnet_user(devnet_seed, i) for i in range(users)]
        self.nonces = [0] * users
        self.rate = rate
        self.malformed_every = malformed_every
        self.rng = random.Random(seed)
        self.stats = LoadStats()
        self.peers: dict[int, Peer] = {}
        self.endpoint: Endpoint | None = None

    async def connect(self, binding: str = "qh3") -> None:
        """Dial every validator not yet connected, all at once (one endpoint)."""
        if self.endpoint is None:
            self.endpoint = Endpoint(BINDINGS[binding](), NodeIdentity.generate(), {})
        endpoint = self.endpoint

        async def dial(index: int) -> None:
            a = self.g.addresses[index]
            try:
                self.peers[index] = await endpoint.dial(a.host, a.port, a.node_id)
            except (TransportError, OSError):
                return

        missing = [
            a.index
            for a in self.g.addresses
            if a.index not in self.peers or self.peers[a.index].session.closed
        ]
        await asyncio.gather(*(dial(i) for i in missing))

    def _next_tx(self, advance: bool = True) -> bytes:
        """A signed transfer from a random user; ``advance`` consumes its nonce."""
        u = self.rng.randrange(len(self.users))
        recipient = hashlib.sha256(self.users[(u + 1) % len(self.users)].public_key).digest()
        frame = build_transfer(
            self.users[u],
            recipient,
            self.rng.randrange(1, 1000),
            self.rng.randrange(1, 50),
            self.nonces[u],
            self.g.chain_id,
        )
        self.nonces[u] += advance
        return frame

    async def _submit(self, index: int, frame: bytes) -> None:
        peer = self.peers.get(index)
        if peer is None or peer.session.closed:
            self.stats.failed += 1
            return
        try:
            out = await peer.open_stream(StreamType.TX_SUBMIT)
            await out.finish(frame)
            self.stats.per_validator[index] = self.stats.per_validator.get(index, 0) + 1
        except (TransportError, ZapError):
            self.stats.failed += 1

    async def run(self, stop: asyncio.Event) -> None:
        """Submit until ``stop`` is set."""
        if self.endpoint is None:
            await self.connect()
        tick = 0.05
        per_tick = max(1, int(self.rate * tick))
        targets = sorted(self.peers)
        tasks: set[asyncio.Task[None]] = set()
        while not stop.is_set() and targets:
            for _ in range(per_tick):
                index = targets[self.stats.sent % len(targets)]
                self.stats.sent += 1
                bad = bool(self.malformed_every) and self.stats.sent % self.malformed_every == 0
                frame = self._next_tx(advance=not bad)
                if bad:
                    frame = self.rng.choice(_BAD_FRAMES)(frame)
                    self.stats.malformed += 1
                task = asyncio.create_task(self._submit(index, frame))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(tick)
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def close(self) -> None:
        if self.endpoint is not None:
            await asyncio.wait_for(self.endpoint.close(), 5)
