"""A validator's DHT: Kademlia on the node's own QUIC endpoint, finalized blocks by id.

Contract
--------
:class:`NodeDht` is a :class:`~zapstack.node.adapters.dht_quic.QuicDht` that shares the
node's :class:`~zapstack.transport.driver.Endpoint` (one UDP port, one
identity: the validator's transport key) instead of listening on its own:
register :meth:`NodeDht.handlers` (DHT_RPC, BLOCK_CHUNK) on the endpoint
before it listens, then :meth:`start`.

* **Every block held is provided.**  :attr:`NodeDht.heights` is an index
  ``block id -> height`` of every block in the node's
  :class:`~zapstack.node.blockstore.BlockStore` (built at start from the
  files' 44-byte headers, :meth:`index_store`, in a worker thread; a finalized
  block is added by :meth:`remember`).  No block bytes are kept for it.
* **Republish.**  A :class:`~zapstack.dht.republish.ProvideSchedule` announces
  each indexed id (ADD_PROVIDER at the k closest nodes) and again before its
  record's TTL runs out: newest blocks first after a (re)start, a finalized
  block at once, at most ``ANNOUNCE_RATE`` announcements a second and
  ``MAX_IN_FLIGHT`` at a time (``docs/formats/dht.md`` §7).  :meth:`announce`
  only queues a block; :meth:`provide_block` announces one now.
* **Serving.**  GET_HEADER / GET_CHUNK for an indexed id load the block from
  the store by height (its id re-checked), chunked per
  ``docs/formats/chunks.md`` with the ZAP block frame's own ``chunk_root``
  (:func:`block_layout`), kept in a small LRU (``keep`` blocks); older ones
  are dropped and reloaded on demand.  A GET_PROVIDERS for an indexed id
  lists this node among the providers (its own record is refreshed first),
  so a holder is found even before its announcement went out.
* :meth:`stay_joined` (the node runs it for its lifetime) joins the DHT off
  the other validators, retries while the routing table is short, indexes the
  store once the first join attempt ran and runs the republish schedule.
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
from zapstack.dht.messages import GetChunk, GetHeader, GetProviders, Message
from zapstack.dht.node import DhtNode
from zapstack.dht.republish import ANNOUNCE_RATE, ProvideSchedule
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
        announce_rate: float = ANNOUNCE_RATE,
    ) -> None:
        super().__init__(
            endpoint.identity, endpoint.binding, rng=rng, config=endpoint.config,
            rpc_timeout=rpc_timeout,
        )  # fmt: skip
        self.endpoint = endpoint  # share the node's endpoint (the one QuicDht made is unused)
        self.addr = addr
        self.block_store = store
        self.keep = keep
        self.announce_rate = announce_rate
        self.heights: dict[bytes, int] = {}
        """Block id -> height of every block this node provides."""
        self.schedule: ProvideSchedule | None = None
        """When each id is (re-)announced; made by :meth:`start`."""
        self._loaded: OrderedDict[bytes, None] = OrderedDict()
        self._provide_wake = asyncio.Event()
        self.provided = 0
        """Announcements acknowledged so far (a block re-announced counts again)."""

    def handlers(self) -> dict[StreamType, HandlerFactory]:
        """Register these on the node's endpoint (before it listens)."""
        return {t: self._serve_factory for t in (StreamType.DHT_RPC, StreamType.BLOCK_CHUNK)}

    async def start(self, host: str = "127.0.0.1") -> Contact:
        """Start the DHT core and its pump on the already-listening endpoint."""
        now = self.now()
        self.node = DhtNode(
            self.identity.spki, self.addr, rng=self.rng, now=now, rpc_timeout=self.rpc_timeout
        )
        self.schedule = ProvideSchedule(
            rng=random.Random(self.rng.random()), now=now, rate=self.announce_rate,
            burst=self.announce_rate,
        )  # fmt: skip
        for block_id in self.heights:  # remembered before start
            self.schedule.add(block_id, now)
        self._pump = asyncio.get_running_loop().create_task(self._run())
        return self.node.contact

    async def close(self) -> None:
        """Stop; close the connections the DHT dialled (not the shared endpoint)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()  # the loops end on their next turn should a cancel be lost
        self._provide_wake.set()
        tasks = [*self._tasks, *([self._pump] if self._pump else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for peer in list(self._peers.values()):
            peer.close()

    # ------------------------------------------------------------ blocks

    def remember(self, height: int, block: bytes) -> bytes:
        """Serve ``block`` (finalized at ``height``) by id and queue its announcement."""
        block_id = hashlib.sha256(block).digest()
        self._index(block_id, height)
        return block_id

    def _index(self, block_id: bytes, height: int) -> None:
        self.heights[block_id] = height
        if self.schedule is not None and self.schedule.add(block_id, self.now()):
            self._provide_wake.set()

    async def index_store(self, top: int) -> int:
        """Index every block the store holds up to ``top``, newest first; return how many.

        Only the files' headers are read (in a worker thread); the ids are then
        announced at the schedule's rate, the newest first.
        """
        store = self.block_store

        def scan() -> list[tuple[bytes, int]]:
            out = []
            for h in range(top, 0, -1):
                block_id = store.block_id(h)
                if block_id is not None:
                    out.append((block_id, h))
            return out

        found = await asyncio.get_running_loop().run_in_executor(None, scan)
        for block_id, h in found:
            self.heights.setdefault(block_id, h)
        if self.schedule is not None:
            self.schedule.add_backlog([b for b, _ in found], self.now())
            self._provide_wake.set()
        return len(found)

    async def provide_block(self, height: int, block: bytes, timeout: float = 10.0) -> int:
        """Announce ``block`` now; return how many nodes acknowledged the provider record."""
        block_id = hashlib.sha256(block).digest()
        self.heights[block_id] = height
        done = await asyncio.wait_for(self.provide(block_id), timeout)
        self.provided += 1
        return len(done.acked)

    async def announce(self, height: int, block: bytes) -> None:
        """Queue ``block`` for announcement (the schedule sends it as soon as its rate allows)."""
        self.remember(height, block)

    async def _announce_key(self, block_id: bytes, timeout: float = 10.0) -> None:
        assert self.schedule is not None and self.node is not None
        ok = False
        try:
            done = await asyncio.wait_for(self.provide(block_id), timeout)
            ok = bool(done.acked) or len(self.node.routing) == 0  # alone: our record is it
            if ok:
                self.provided += 1
        except (TimeoutError, TransportError, ZapError) as exc:
            log.info("provide of %s failed: %s", block_id.hex()[:16], exc)
        finally:
            self.schedule.done(block_id, self.now(), ok=ok)
            self._provide_wake.set()

    async def _republish(self) -> None:
        """Start the announcements the schedule hands out; until cancelled."""
        assert self.schedule is not None
        while not self._closed:
            now = self.now()
            for block_id in self.schedule.take(now):
                self._spawn(self._announce_key(block_id))
            deadline = self.schedule.next_deadline()
            wait = 10.0 if deadline is None else min(10.0, max(0.0, deadline - now))
            self._provide_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._provide_wake.wait(), wait)

    async def stay_joined(self, seeds: list[Contact], top: int) -> None:
        """Join off ``seeds`` and retry while the table is short; until cancelled.

        Once the first join attempt ran, every block the store holds up to
        ``top`` is indexed and the republish schedule starts: provider records
        do not survive a restart.
        """
        assert self.node is not None, "start() first"
        republish: asyncio.Task[None] | None = None
        try:
            while True:
                if len(self.node.routing) < len(seeds):
                    with contextlib.suppress(TimeoutError, TransportError, ZapError):
                        await asyncio.wait_for(self.bootstrap(seeds), 10)
                if republish is None:
                    await self.index_store(top)
                    republish = asyncio.get_running_loop().create_task(self._republish())
                    self._tasks.add(republish)  # close() ends it too
                await asyncio.sleep(1.0 if len(self.node.routing) < len(seeds) else 5.0)
        finally:
            if republish is not None:
                republish.cancel()

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
        elif isinstance(msg, GetProviders) and msg.key in self.heights and self.node is not None:
            with contextlib.suppress(RemoteProtocolError):  # provider table full: as before
                self.node.records.add_provider(msg.key, self.node.contact, self.now())
        return super()._answer(peer_id, msg)
