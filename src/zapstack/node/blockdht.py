"""A validator's DHT: Kademlia on the node's own QUIC endpoint, finalized blocks by id.

Contract
--------
:class:`NodeDht` is a :class:`~zapstack.node.adapters.dht_quic.QuicDht` that shares the
node's :class:`~zapstack.transport.driver.Endpoint` (one UDP port, one
identity: the validator's transport key) instead of listening on its own:
register :meth:`NodeDht.handlers` (DHT_RPC, BLOCK_CHUNK) on the endpoint
before it listens, then :meth:`start`.

* :meth:`provide_block` records ``block id -> height`` and announces the node
  as a provider of the block id (ADD_PROVIDER at the k closest nodes).
* GET_HEADER / GET_CHUNK for a provided block are answered from the node's
  :class:`~zapstack.node.blockstore.BlockStore`: the block is loaded on first
  request (its id re-checked), chunked per ``docs/formats/chunks.md`` with the
  ZAP block frame's own ``chunk_root`` (:func:`block_layout`), and kept in a
  small LRU (``keep`` blocks); older ones are dropped and reloaded on demand.
* :meth:`stay_joined` (the node runs it for its lifetime) joins the DHT off
  the other validators, retries while the routing table is short, and
  announces again the blocks a restarted node already holds (provider
  records do not survive a restart); :meth:`announce` is a fire-and-forget
  :meth:`provide_block` whose failure is only logged.
* :meth:`close` stops the DHT and closes only the connections it dialled; the
  node closes the shared endpoint.  Idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import struct
from collections import OrderedDict
from collections.abc import Sequence

from zapstack.dht.blocks import BlockLayout, zap_block_layout
from zapstack.dht.ids import Contact
from zapstack.dht.messages import GetChunk, GetHeader, Message
from zapstack.dht.node import DhtNode
from zapstack.errors import LocalProtocolError, RemoteProtocolError, TransportError, ZapError
from zapstack.node.adapters.dht_quic import QuicDht
from zapstack.node.blockstore import BlockStore
from zapstack.transport.driver import Endpoint
from zapstack.transport.events import HandlerAction
from zapstack.transport.handler import HandlerFactory
from zapstack.transport.streams import StreamType
from zapstack.zap.schema import BLOCK_SCHEMA

__all__ = ["NodeDht", "block_layout"]

log = logging.getLogger("zapstack.node")

_OFFSETS = struct.Struct(f"<{len(BLOCK_SCHEMA.fields)}I")


def block_layout(block: bytes) -> BlockLayout:
    """The chunk layout of a whole ZAP block frame (payload start from its offsets table)."""
    if len(block) < 21 + _OFFSETS.size:
        raise RemoteProtocolError("block too short for its offsets table")
    ends = _OFFSETS.unpack_from(block, 21)
    start = ends[BLOCK_SCHEMA.index["payload"] - 1]
    return zap_block_layout(block[:start])


class NodeDht(QuicDht):
    """See the module contract."""

    def __init__(
        self,
        endpoint: Endpoint,
        addr: str,
        store: BlockStore,
        *,
        rng: random.Random,
        rpc_timeout: float = 2.0,
        keep: int = 16,
    ) -> None:
        super().__init__(
            endpoint.identity, endpoint.binding, rng=rng, config=endpoint.config,
            rpc_timeout=rpc_timeout,
        )  # fmt: skip
        self.endpoint = endpoint  # share the node's endpoint (the one QuicDht made is unused)
        self.addr = addr
        self.block_store = store
        self.keep = keep
        self.heights: dict[bytes, int] = {}
        """Block id -> height of every block this node provides."""
        self._loaded: OrderedDict[bytes, None] = OrderedDict()
        self.provided = 0
        """Blocks announced so far."""

    def handlers(self) -> dict[StreamType, HandlerFactory]:
        """Register these on the node's endpoint (before it listens)."""
        return {t: self._serve_factory for t in (StreamType.DHT_RPC, StreamType.BLOCK_CHUNK)}

    async def start(self, host: str = "127.0.0.1") -> Contact:
        """Start the DHT core and its pump on the already-listening endpoint."""
        self.node = DhtNode(
            self.identity.spki, self.addr, rng=self.rng, now=self.now(),
            rpc_timeout=self.rpc_timeout,
        )  # fmt: skip
        self._pump = asyncio.get_running_loop().create_task(self._run())
        return self.node.contact

    async def close(self) -> None:
        """Stop; close the connections the DHT dialled (not the shared endpoint)."""
        if self._closed:
            return
        self._closed = True
        tasks = [*self._tasks, *([self._pump] if self._pump else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for peer in list(self._peers.values()):
            peer.close()

    # ------------------------------------------------------------ blocks

    def remember(self, height: int, block: bytes) -> bytes:
        """Serve ``block`` (finalized at ``height``) by id from the store; return the id."""
        block_id = hashlib.sha256(block).digest()
        self.heights[block_id] = height
        return block_id

    async def provide_block(self, height: int, block: bytes, timeout: float = 10.0) -> int:
        """Announce ``block``; return how many nodes acknowledged the provider record."""
        block_id = self.remember(height, block)
        done = await asyncio.wait_for(self.provide(block_id), timeout)
        self.provided += 1
        return len(done.acked)

    async def announce(self, height: int, block: bytes) -> None:
        """:meth:`provide_block`, logging a failure instead of raising it."""
        try:
            await self.provide_block(height, block)
        except (TimeoutError, TransportError, ZapError) as exc:
            log.info("provide of height %d failed: %s", height, exc)

    async def stay_joined(self, seeds: list[Contact], held: list[tuple[int, bytes]]) -> None:
        """Join off ``seeds`` and retry while the table is short; until cancelled.

        ``held`` (height, block) are served by id at once and announced once the
        first join attempt ran: provider records do not survive a restart.
        """
        assert self.node is not None, "start() first"
        for h, block in held:
            self.remember(h, block)
        while True:
            if len(self.node.routing) < len(seeds):
                with contextlib.suppress(TimeoutError, TransportError, ZapError):
                    await asyncio.wait_for(self.bootstrap(seeds), 10)
            if held:
                for h, block in held:
                    await self.announce(h, block)
                held = []
            await asyncio.sleep(1.0 if len(self.node.routing) < len(seeds) else 5.0)

    def _load(self, block_id: bytes) -> None:
        if block_id in self._loaded:
            self._loaded.move_to_end(block_id)
            return
        height = self.heights.get(block_id)
        block = self.block_store.block(height) if height is not None else None
        if block is None or hashlib.sha256(block).digest() != block_id or self.node is None:
            return  # answered NOT_FOUND by the core
        try:
            self.serve_block(block, block_layout(block))
        except (LocalProtocolError, ZapError):
            return
        self._loaded[block_id] = None
        while len(self._loaded) > self.keep:
            old, _ = self._loaded.popitem(last=False)
            self.node.drop_block(old)

    def _answer(self, peer_id: bytes, msg: Message) -> Sequence[HandlerAction]:
        if isinstance(msg, GetHeader | GetChunk):
            self._load(msg.block_id)
        return super()._answer(peer_id, msg)
