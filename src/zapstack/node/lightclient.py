"""A light client: re-fetches finalized blocks by id and checks them.

For each height it asks a validator (over QUIC, HEADER_RANGE) for the block
and its QuasarCert, verifies the cert against the genesis validator set and
CertPolicy, and checks that ``sha256(block bytes)`` equals the certified
block id.  A validator that fails to answer, or answers with bytes that do not
verify, is skipped and the height is re-fetched from the next validator.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from dataclasses import dataclass

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.policy import accepted_tier, observed_tier
from zapstack.errors import InvalidCert, TransportError, ZapError
from zapstack.node.genesis import Genesis
from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Endpoint, Peer
from zapstack.transport.events import End, HandlerAction
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.streams import StreamType
from zapstack.zap.frames import parse_block

__all__ = ["Fetched", "LightClient"]

_RANGE = struct.Struct("<QI")


@dataclass(frozen=True, slots=True)
class Fetched:
    """One re-fetched height."""

    height: int
    ok: bool
    block_id: str
    tier: str
    txs: int
    source: int
    """Validator index that served it (-1: none could)."""


class _Reply:
    def __init__(self, fut: asyncio.Future[bytes]) -> None:
        self.buf = bytearray()
        self.fut = fut

    def on_data(self, data: bytes) -> list[HandlerAction]:
        self.buf += data
        return []

    def on_end(self) -> list[HandlerAction]:
        if not self.fut.done():
            self.fut.set_result(bytes(self.buf))
        return []

    def on_terminated(self, end: End, code: int | None) -> None:
        if not self.fut.done():
            self.fut.set_exception(TransportError(f"stream ended: {end.name} {code}"))


class LightClient:
    """See the module docstring."""

    def __init__(self, genesis: Genesis, binding: str = "qh3") -> None:
        self.g = genesis
        self.endpoint = Endpoint(BINDINGS[binding](), NodeIdentity.generate(), {})
        self.peers: dict[int, Peer] = {}

    async def _peer(self, index: int) -> Peer | None:
        peer = self.peers.get(index)
        if peer is not None and not peer.session.closed:
            return peer
        a = self.g.addresses[index]
        try:
            self.peers[index] = await self.endpoint.dial(a.host, a.port, a.node_id)
        except (TransportError, OSError):
            return None
        return self.peers[index]

    async def _range(self, index: int, start: int, count: int) -> bytes:
        peer = await self._peer(index)
        if peer is None:
            raise TransportError(f"validator {index} unreachable")
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        out = await peer.open_stream(StreamType.HEADER_RANGE, _Reply(fut))
        await out.finish(_RANGE.pack(start, count))
        return await asyncio.wait_for(fut, 30)

    def _check(self, height: int, cert_bytes: bytes, block_bytes: bytes) -> tuple[str, int, str]:
        cert = cert_mod.decode(cert_bytes)
        verdict = cert_mod.verify_cert(cert, self.g.vset, block_bytes=block_bytes)
        if accepted_tier(self.g.policy, verdict.present) is None or cert.height != height:
            raise InvalidCert("cert does not finalize this height under the policy")
        block = parse_block(block_bytes, chain_id=self.g.chain_id)
        if hashlib.sha256(block_bytes).digest() != cert.block_id or block.height != height:
            raise InvalidCert("block bytes do not hash to the certified id")
        tier = observed_tier(self.g.policy.variant, verdict.present)
        return cert.block_id.hex(), block.tx_count, tier.value if tier else "none"

    async def refetch(self, height: int) -> Fetched:
        """Fetch and verify one height, trying validators in turn."""
        for k in range(self.g.vset.n):
            index = (height + k) % self.g.vset.n
            try:
                data = await self._range(index, height, 1)
                (n,) = struct.unpack_from("<I", data, 0)
                cert_bytes = data[4 : 4 + n]
                (m,) = struct.unpack_from("<I", data, 4 + n)
                block_bytes = data[8 + n : 8 + n + m]
                bid, txs, tier = self._check(height, cert_bytes, block_bytes)
                return Fetched(height, True, bid, tier, txs, index)
            except (ZapError, struct.error, TimeoutError):
                continue
        return Fetched(height, False, "", "none", 0, -1)

    async def refetch_range(self, first: int, last: int) -> list[Fetched]:
        """Re-fetch heights ``first..last`` (inclusive)."""
        return [await self.refetch(h) for h in range(first, last + 1)]

    async def close(self) -> None:
        await asyncio.wait_for(self.endpoint.close(), 5)
