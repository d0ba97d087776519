"""The light client: re-fetches finalized blocks through the DHT and checks them.

Per height (``docs/formats/dht.md`` §7):

1. **Cert.**  The QuasarCert comes over HEADER_RANGE with the ``CERTS_ONLY``
   flag (``docs/formats/bootstrap.md`` §3: records carry the cert, no block)
   from a validator, tried in turn.  It is verified *before* any block byte is
   fetched: every present leg against the genesis validator set, the legs
   against the CertPolicy (``accepted_tier``), its height and chain id.  It
   names the block id.
2. **Block.**  ``GET_PROVIDERS(block id)`` on the DHT, then a parallel chunk
   pull from up to ``k`` providers (:class:`~zapstack.dht.chunks.ChunkPull`:
   the block's header prefix from a provider, every 64 KiB chunk verified
   against its ``chunk_root`` before insertion, a provider that disconnects
   mid-transfer has its partial chunks dropped and re-requested elsewhere).
3. **Check.**  ``sha256(bytes) == block id`` (the pull insists on it, and so
   do we), the frame parses (structure, roots, proposer signature) at the
   certified height, and ``verify_cert(..., block_bytes=bytes)`` once more.

**Head.**  :meth:`LightClient.head` asks every validator for its latest
finalized height and that height's cert (HEADER_RANGE ``CERTS_ONLY`` from
``LATEST``); the highest height whose cert verifies as in step 1 wins.  A
claim without such a cert counts for nothing.

Every await is bounded.  A height whose cert or block cannot be had is
reported with ``ok = False``.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from zapstack.bootstrap.readers import RangeRecord, RangeReplyReader
from zapstack.bootstrap.wire import (
    CERTS_ONLY,
    LATEST,
    MAX_RANGE,
    RangeRequest,
    encode_range_request,
)
from zapstack.consensus import cert as cert_mod
from zapstack.consensus.policy import accepted_tier, observed_tier
from zapstack.dht.blocks import zap_block_layout
from zapstack.dht.chunks import ChunkPull
from zapstack.dht.ids import Contact
from zapstack.errors import InvalidCert, RemoteProtocolError, TransportError, ZapError
from zapstack.node.adapters.dht_quic import QuicDht
from zapstack.node.genesis import Genesis
from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Peer, TransportConfig
from zapstack.transport.events import End, HandlerAction
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.streams import StreamType
from zapstack.zap.frames import parse_block

__all__ = ["Fetched", "Head", "LightClient"]


@dataclass(frozen=True, slots=True)
class Fetched:
    """One re-fetched height."""

    height: int
    ok: bool
    block_id: str
    tier: str
    txs: int
    source: int
    """Validator index that served the cert (-1: none could)."""
    providers: int = 0
    """DHT providers the block was pulled from."""
    size: int = 0
    """Block bytes pulled."""
    chunks: int = 0
    """64 KiB payload chunks verified."""
    error: str = ""
    """Why it failed (empty when ok)."""


@dataclass(frozen=True, slots=True)
class Head:
    """The latest finalized height the validators proved (:meth:`LightClient.head`)."""

    height: int
    """The highest height whose cert verified against the genesis."""
    cert: bytes
    """That height's QuasarCert (checked: every present leg, the policy, height, chain id)."""
    block_id: str
    """The block id the cert names (hex)."""
    tier: str
    """The tier the cert's legs reach."""
    source: int
    """Validator index that served it."""
    claims: tuple[tuple[int, int], ...] = ()
    """(validator index, head height it claimed) of every validator that answered."""


class _Reply:
    def __init__(self, reader: RangeReplyReader, fut: asyncio.Future[list[RangeRecord]]) -> None:
        self.reader, self.fut = reader, fut
        self.records: list[RangeRecord] = []
        self.head = -1
        """The server's head height (first field of the reply; -1 until read)."""

    def _take(self) -> None:
        while (rec := self.reader.next_record()) is not None:
            if isinstance(rec, RangeRecord):
                self.records.append(rec)
            else:
                self.head = rec

    def on_data(self, data: bytes) -> list[HandlerAction]:
        try:
            self.reader.receive_data(data)
            self._take()
        except RemoteProtocolError as exc:
            if not self.fut.done():
                self.fut.set_exception(exc)
        return []

    def on_end(self) -> list[HandlerAction]:
        try:
            self.reader.end_of_stream()
            if not self.fut.done():
                self.fut.set_result(self.records)
        except RemoteProtocolError as exc:
            if not self.fut.done():
                self.fut.set_exception(exc)
        return []

    def on_terminated(self, end: End, code: int | None) -> None:
        if not self.fut.done():
            self.fut.set_exception(TransportError(f"stream ended: {end.name} {code}"))


class LightClient:
    """See the module docstring."""

    def __init__(
        self, genesis: Genesis, binding: str = "qh3", *, k: int = 3, seed: int = 0
    ) -> None:
        self.g = genesis
        self.k = k
        config = TransportConfig(handshake_timeout=3.0, idle_timeout=15.0)
        self.dht = QuicDht(
            NodeIdentity.generate(), BINDINGS[binding](), rng=random.Random(seed), config=config
        )
        self.peers: dict[int, Peer] = {}
        self.on_pull: Callable[[ChunkPull, list[Contact]], None] | None = None
        """Called when a pull starts (tests inject faults through it)."""
        self._started = False

    async def start(self) -> None:
        """Listen (ephemeral port) and join the DHT off the validators."""
        if self._started:
            return
        self._started = True
        await self.dht.start()
        seeds = [Contact(a.node_id, f"{a.host}:{a.port}") for a in self.g.addresses]
        await asyncio.wait_for(self.dht.bootstrap(seeds), 15)

    async def _peer(self, index: int) -> Peer | None:
        peer = self.peers.get(index)
        if peer is not None and not peer.session.closed:
            return peer
        a = self.g.addresses[index]
        try:
            self.peers[index] = await self.dht.endpoint.dial(a.host, a.port, a.node_id)
        except (TransportError, OSError):
            return None
        return self.peers[index]

    async def _range(self, index: int, start: int, count: int) -> tuple[int, list[RangeRecord]]:
        """HEADER_RANGE(CERTS_ONLY) to validator ``index``: (its head, the cert records)."""
        peer = await self._peer(index)
        if peer is None:
            raise TransportError(f"validator {index} unreachable")
        fut: asyncio.Future[list[RangeRecord]] = asyncio.get_running_loop().create_future()
        reply = _Reply(RangeReplyReader(count, certs_only=True), fut)
        out = await peer.open_stream(StreamType.HEADER_RANGE, reply)
        await out.finish(encode_range_request(RangeRequest(CERTS_ONLY, start, count)))
        records = await asyncio.wait_for(fut, 15)
        return reply.head, records

    async def _certs(self, index: int, start: int, count: int) -> list[RangeRecord]:
        return (await self._range(index, start, count))[1]

    async def _latest(self, index: int) -> tuple[int, bytes | None]:
        """Validator ``index``'s claimed head and the cert it sent for it (None: none)."""
        head, records = await self._range(index, LATEST, 1)
        return head, (records[-1].cert if records and head > 0 else None)

    async def head(self, timeout: float = 20.0) -> Head:
        """The latest finalized height: asked of every validator, the highest one proved wins.

        Each validator is asked for its head and that height's cert
        (HEADER_RANGE, ``CERTS_ONLY``, ``start = LATEST``, ``count = 1``); a cert
        counts only if :meth:`check_cert` passes it at the height the validator
        claimed.  Raises :class:`~zapstack.errors.TransportError` when no
        validator proved a height above 0.
        """
        await self.start()
        n = self.g.vset.n
        answers = await asyncio.gather(
            *(asyncio.wait_for(self._latest(i), timeout) for i in range(n)),
            return_exceptions=True,
        )
        best: Head | None = None
        claims = tuple((i, a[0]) for i, a in enumerate(answers) if isinstance(a, tuple))
        for i, answer in enumerate(answers):
            if not isinstance(answer, tuple):
                continue
            height, cert_bytes = answer
            if cert_bytes is None or (best is not None and height <= best.height):
                continue
            try:
                cert, tier = self.check_cert(height, cert_bytes)
            except ZapError:
                continue  # a claim without a cert that verifies counts for nothing
            best = Head(height, cert_bytes, cert.block_id.hex(), tier, i, claims)
        if best is None:
            raise TransportError(f"no validator proved a finalized height (claims: {claims})")
        return best

    def check_cert(self, height: int, cert_bytes: bytes) -> tuple[cert_mod.QuasarCert, str]:
        """Verify a cert for ``height`` without the block; return it and its tier."""
        cert = cert_mod.decode(cert_bytes)
        if cert.height != height or cert.chain_id != self.g.chain_id:
            raise InvalidCert("cert names another height or chain")
        verdict = cert_mod.verify_cert(cert, self.g.vset)
        if accepted_tier(self.g.policy, verdict.present) is None:
            raise InvalidCert("cert legs do not satisfy the policy")
        tier = observed_tier(self.g.policy.variant, verdict.present)
        return cert, tier.value if tier else "none"

    async def certs(self, first: int, last: int) -> dict[int, tuple[bytes, int]]:
        """Height -> (cert bytes, serving validator) for ``first..last``, checked."""
        got: dict[int, tuple[bytes, int]] = {}
        for index in range(self.g.vset.n):
            h = first
            try:
                while h <= last:
                    records = await self._certs(index, h, min(MAX_RANGE, last - h + 1))
                    if not records:
                        break
                    for rec in records:
                        self.check_cert(h, rec.cert)
                        got.setdefault(h, (rec.cert, index))
                        h += 1
            except (ZapError, TimeoutError):
                continue
            if len(got) == last - first + 1:
                break
        return got

    async def fetch_block(self, block_id: bytes, timeout: float = 20.0) -> tuple[bytes, int, int]:
        """Pull ``block_id`` from up to ``k`` DHT providers: (bytes, providers, chunks)."""
        found = await asyncio.wait_for(self.dht.get_providers(block_id), timeout)
        providers = list(found.result.providers[: self.k])
        if not providers:
            raise TransportError(f"no provider of {block_id.hex()[:16]}")
        pull, done = self.dht.start_pull(block_id, providers, zap_block_layout)
        if self.on_pull is not None:
            self.on_pull(pull, providers)
        block = await asyncio.wait_for(done, timeout)
        if hashlib.sha256(block).digest() != block_id:
            raise InvalidCert("pulled bytes do not hash to the block id")
        return block, len(providers), len(pull.have)

    async def refetch(self, height: int, cert_bytes: bytes, source: int) -> Fetched:
        """Fetch block ``height`` named by its (already checked) cert and verify it."""
        try:
            cert, tier = self.check_cert(height, cert_bytes)
            block, providers, chunks = await self.fetch_block(cert.block_id)
            view = parse_block(block, chain_id=self.g.chain_id)
            if view.height != height:
                raise InvalidCert("block height differs from its cert")
            cert_mod.verify_cert(cert, self.g.vset, block_bytes=block)
        except (ZapError, TimeoutError) as exc:
            return Fetched(height, False, "", "none", 0, source, error=str(exc) or "timeout")
        return Fetched(
            height, True, cert.block_id.hex(), tier, view.tx_count, source, providers,
            len(block), chunks,
        )  # fmt: skip

    async def refetch_range(self, first: int, last: int) -> list[Fetched]:
        """Re-fetch heights ``first..last`` (inclusive) through the DHT."""
        await self.start()
        certs = await self.certs(first, last)
        out = []
        for h in range(first, last + 1):
            if h not in certs:
                out.append(Fetched(h, False, "", "none", 0, -1, error="no cert"))
                continue
            out.append(await self.refetch(h, *certs[h]))
        return out

    async def close(self) -> None:
        await asyncio.wait_for(self.dht.close(), 5)
