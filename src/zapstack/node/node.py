"""``zap node``: one validator process -- the five pipelines wired to real QUIC.

Contract
--------
* A node home (:mod:`zapstack.node.config`) holds ``node.json`` (its keys),
  ``db/`` (ZapDB), ``blocks/`` (finalized blocks + certs), ``status.json``
  (:mod:`zapstack.node.status`) and ``node.log`` (JSON lines).
* Wiring: QUIC endpoint (qh3) with one stream handler per stream type
  (:mod:`zapstack.node.handlers`): TX_SUBMIT -> tx receive pipeline (stages
  1-5, signatures batched on the verify pool: :mod:`zapstack.node.txpipe`)
  -> mempool; PROPOSAL / CERT_SHARES / BLOCK_PUSH -> consensus
  (:mod:`zapstack.node.engine`, through :mod:`zapstack.node.inbox`);
  MEMPOOL_GOSSIP -> mempool; HEADER_RANGE / STATE_CHUNK -> the bootstrap
  server (``docs/formats/bootstrap.md``: finalized blocks + certs from the
  block store, state chunks of the last 4 finalized roots), which also pushes
  live blocks, admitted txs and our vote records to peers that subscribed;
  DHT_RPC / BLOCK_CHUNK -> the node's DHT (:mod:`zapstack.node.blockdht`),
  which provides every finalized block by id.  Connections:
  :mod:`zapstack.node.peers` (lower indexes dial higher ones, one connection
  per pair, both directions).
* The node is the engine's :class:`~zapstack.node.engine.Io`: a monotonic
  clock, a two-thread worker pool for the critical path's blocking work
  (build, receive, commit, FINAL verify, legs), one more thread for
  background work (Corona round 1 ahead, cert upgrades: a separate pool, so
  it never queues ahead of the critical path), and sends over new
  streams (our own messages go straight into the inbox; our votes are also
  published to VOTE-stream subscribers).
* A restarted node resumes from its last committed block (ZapDB head) and
  catches up the heights it missed before it votes again; with
  ``state_sync`` and an empty ZapDB it first downloads a recent finalized
  state from its peers (:mod:`zapstack.node.sync`).
* Faults: every loop runs under :func:`zapstack.node.halt.guarded`; a
  protocol error is dropped with a warning inside its loop, anything else
  that escapes (a :class:`FatalStoreError` -- also one the engine recorded in
  ``Consensus.fatal`` --, an ``OSError``, a bug) halts the node at its last
  committed block with the reason in :attr:`Node.fatal`, the log and
  ``status.json``.
* Shutdown (SIGINT/SIGTERM or :meth:`Node.stop`) cancels the loops, closes
  the pushes, the DHT and the endpoint (each bounded, 5 s), then the store
  and the worker pools (:meth:`Node.close`, idempotent); a kill -9 loses
  nothing committed (ZapDB + fsynced blocks).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from zapstack.bootstrap.server import HOLD_PINS, BootstrapServer
from zapstack.dht.ids import Contact
from zapstack.errors import FatalStoreError, ZapError
from zapstack.node.blockdht import NodeDht
from zapstack.node.blockstore import BlockStore
from zapstack.node.bootstrap_driver import PushWriter, StoreBlocks
from zapstack.node.config import DB_MAX_GIB, GOSSIP_PERIOD_S, TICK_PERIOD_S, find_genesis
from zapstack.node.datadir import write_genesis_state
from zapstack.node.engine import Consensus, HeightRecord
from zapstack.node.genesis import Genesis, NodeKeys, load_genesis, load_node_keys
from zapstack.node.halt import guarded, hold_reserve
from zapstack.node.handlers import stream_handlers
from zapstack.node.http.server import NodeHttp
from zapstack.node.inbox import Inbox
from zapstack.node.metrics import NodeMetrics
from zapstack.node.peers import Connections
from zapstack.node.stateserve import StateServing
from zapstack.node.status import node_status, status_loop
from zapstack.node.sync import ChainSync
from zapstack.node.txindex import ChainIndex
from zapstack.node.txpipe import AccountReader, TxPipeline
from zapstack.node.wire import STREAM_OF, MsgType, decode, encode
from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Endpoint, Peer, TransportConfig
from zapstack.transport.streams import StreamType
from zapstack.verify.executor import HEAD_HEIGHT_META, BlockExecutor
from zapstack.zapdb import ZapDB

__all__ = ["Node", "find_genesis"]

log = logging.getLogger("zapstack.node")

_VOTES = frozenset({MsgType.SHARE, MsgType.CORONA_COMMIT})
"""Our consensus messages republished as VOTE records to subscribers."""


class Node:
    """One validator; see the module docstring."""

    def __init__(
        self,
        home: Path,
        *,
        genesis: Genesis | None = None,
        keys: NodeKeys | None = None,
        binding: str = "qh3",
        http_port: int = 0,
        http_host: str = "127.0.0.1",
        halt_height: int | None = None,
        state_sync: bool = False,
        state_hold_blocks: int = HOLD_PINS,
        db_max_gib: int = DB_MAX_GIB,
    ) -> None:
        self.home = home
        self.g = genesis or load_genesis(find_genesis(home))
        self.keys: NodeKeys = keys or load_node_keys(home / "node.json", self.g)
        self.binding = binding
        self.http_host, self.http_port = http_host, http_port
        self.txindex = ChainIndex()  # block ids, tx inclusions, recent rejects: the HTTP API's
        self.me = self.keys.index
        self.conns = Connections(self.g, self.me)
        self.inbox = Inbox()
        self.started = time.monotonic()
        self.stop_event = asyncio.Event()
        self.fatal: str | None = None
        """Why the node halted on a fault (:func:`zapstack.node.halt.halt`), or None."""
        self.work = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix=f"node{self.me}")
        self.background = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"node{self.me}-bg"
        )
        """Work nobody waits for (Corona round 1 ahead, cert upgrades): one thread of
        its own, so it never queues ahead of ``work`` (the critical path's pool)."""
        self.db = ZapDB.open(home / "db", map_size=db_max_gib << 30)
        self.needs_sync = state_sync and self.db.meta_get(HEAD_HEIGHT_META) is None
        """Empty data dir + ``state_sync``: download a recent state before voting."""
        if not self.needs_sync:
            self.init_genesis_state()
        self.blocks = BlockStore(home / "blocks")
        self._init_tx_pipeline()
        self.halt_height = halt_height
        self.build_chain()
        self._check_block_files()
        self.boot = BootstrapServer(
            self.db,
            blocks=StoreBlocks(self.blocks),
            head=self.executor.height,
            hold_pins=state_hold_blocks,
        )
        if not self.needs_sync:
            self.boot.pin()
        self.serving = StateServing(self.boot, priority=self.conns.by_node_id)
        """STATE_CHUNK requests answered off the event loop, the validators' first."""
        self.pusher = PushWriter(self.boot, self.conns.find)
        self.dht: NodeDht | None = None
        self.metrics = NodeMetrics(self)
        self.on_block: list[Callable[[HeightRecord], None]] = [self.metrics.finalized]  # + terminal
        self.endpoint: Endpoint | None = None
        self.http: NodeHttp | None = None
        self.sync = ChainSync(self)

    def _init_tx_pipeline(self) -> None:
        """The verify pool and its cache, the mempool, TX_SUBMIT and gossip admission."""
        self.tx = TxPipeline(
            AccountReader(self.db),
            self.g.chain_id,
            stop_stream=self.conns.stop_stream,
            reply_stream=self.conns.reply_stream,
            on_rejected=lambda r: self.txindex.rejected(r.tx_id, r.code, r.reason),
        )
        self.sigcache = self.tx.sigcache
        """Tx signatures verified here (admission, gossip): block verify skips them."""
        self.verifier = self.tx.verifier
        self.mempool = self.tx.mempool
        self.rx = self.tx.rx
        self.txsvc = self.tx.txsvc

    def _check_block_files(self) -> None:
        """The block files agree with ZapDB's head, or the node closes what it opened."""
        try:
            self.blocks.check(self.executor.height, self.executor.head)
        except ZapError:
            self.verifier.close()
            self.work.shutdown(wait=False)
            self.background.shutdown(wait=False)
            self.db.close()
            raise

    @property
    def peers(self) -> dict[int, Peer]:
        """Validator index -> its connection (:attr:`Connections.peers`)."""
        return self.conns.peers

    def build_chain(self) -> None:
        """(Re)create the executor and the consensus driver from the ZapDB head."""
        self.executor = BlockExecutor(
            self.db, self.verifier, chain_id=self.g.chain_id, genesis_id=self.g.genesis_id
        )
        self.consensus = Consensus(
            self.g,
            self.keys,
            self.executor,
            self.mempool,
            self.blocks,
            self,
            on_final=self._final,
            halt_height=self.halt_height,
        )

    def init_genesis_state(self) -> None:
        """Write the genesis allocations and head into an empty ZapDB (else nothing)."""
        write_genesis_state(self.db, self.g)

    # ------------------------------------------------------------ Io protocol
    def now_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def wall_ms(self) -> int:
        return int(time.time() * 1000)

    async def run_blocking(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.work, lambda: fn(*args, **kw))

    async def run(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await self.run_blocking(fn, *args, **kw)

    async def run_background(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.background, lambda: fn(*args, **kw))

    def send(self, to: int, msg: MsgType, height: int, round_: int, payload: bytes) -> None:
        data = encode(msg, height, round_, self.me, payload)
        if msg in _VOTES and len(data) <= 65536:
            self.boot.publish_vote(data)  # our vote, to VOTE-stream subscribers
            self.pusher.flush()
        if to == self.me:
            self.inbox.put(decode(data))
            return
        asyncio.get_running_loop().create_task(self.conns.send(to, STREAM_OF[msg], data))

    def broadcast(self, msg: MsgType, height: int, round_: int, payload: bytes) -> None:
        if msg is MsgType.CERT_UPGRADE:  # our round aggregated a leg after FINAL
            self.metrics.upgraded(height)
        for i in range(self.g.vset.n):
            self.send(i, msg, height, round_, payload)

    # ------------------------------------------------------------------- loops
    async def _consensus_loop(self) -> None:
        while True:
            msg = await self.inbox.get()
            self.sync.heights.note(msg.sender, msg.height)  # /health: are we behind?
            behind = msg.height > self.consensus.height and not self.consensus.halted
            if behind and msg.type is MsgType.FINAL:
                await self.sync.catch_up(msg.sender, msg.height)
            try:
                await self.consensus.handle(msg)
            except FatalStoreError:
                raise
            except ZapError as exc:
                log.warning("message %s from %d dropped: %s", msg.type.name, msg.sender, exc)
            if self.consensus.fatal is not None:
                raise self.consensus.fatal  # halts the node (halt.guarded)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_PERIOD_S)
            self.txsvc.tick()  # stalled TX_SUBMIT streams time out
            if not self.sync.catching_up:
                try:
                    await self.consensus.tick()
                except FatalStoreError:
                    raise
                except ZapError as exc:
                    log.warning("consensus tick: %s", exc)
                if self.consensus.fatal is not None:
                    raise self.consensus.fatal

    async def _gossip_loop(self) -> None:
        while True:
            await asyncio.sleep(GOSSIP_PERIOD_S)
            if not self.tx.gossip_out:
                continue
            batch, self.tx.gossip_out = self.tx.gossip_out, []
            self.boot.publish_txs(batch)  # to MEMPOOL_GOSSIP subscribers
            self.pusher.flush()
            data = b"".join(batch)
            for j in list(self.conns.peers):
                asyncio.get_running_loop().create_task(
                    self.conns.send(j, StreamType.MEMPOOL_GOSSIP, data)
                )

    async def _chain_loops(self) -> None:
        """State-sync first when the data dir is empty, then run consensus."""
        if self.needs_sync:
            await self.sync.state_sync()  # a failure halts the node (halt.guarded)
        await asyncio.gather(self._consensus_loop(), self._tick_loop())

    async def _final(self, record: HeightRecord, block: bytes) -> None:
        """The engine finalized a height: metrics, serve and push it, provide it."""
        for listener in self.on_block:
            listener(record)
        self.tx.finalized(record.txs)  # the pushback bound follows what the chain finalizes
        cert = self.blocks.cert(record.height)
        if cert is not None:
            self.boot.add_finalized(block, cert)  # serve it, pin its state, push it
            self.pusher.flush()
        if self.dht is not None:
            self.dht.remember(record.height, block)
            asyncio.get_running_loop().create_task(self.dht.announce(record.height, block))
        self.txindex.finalized(record.height, block, cert or b"")  # the API's index and feed

    async def _dht_loop(self) -> None:
        """Join the DHT off the other validators; serve and (re-)announce every block held."""
        assert self.dht is not None
        seeds = [
            Contact(a.node_id, f"{a.host}:{a.port}") for a in self.g.addresses if a.index != self.me
        ]
        await self.dht.stay_joined(seeds, self.executor.height)

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        """The status record (:func:`zapstack.node.status.node_status`)."""
        return node_status(self)

    # -------------------------------------------------------------------- run
    async def serve(self) -> None:
        """Run until :meth:`stop`; always cleans up."""
        binding = BINDINGS[self.binding]()
        addr = self.g.addresses[self.me]
        self.endpoint = Endpoint(
            binding, self.keys.identity, stream_handlers(self), TransportConfig()
        )
        self.conns.attach(self.endpoint)
        self.dht = NodeDht(
            self.endpoint, f"{addr.host}:{addr.port}", self.blocks, rng=random.Random(self.me)
        )
        self.endpoint.handlers.update(self.dht.handlers())
        hold_reserve(self.home)
        await self.endpoint.listen(addr.host, addr.port)
        await self.dht.start()
        if self.http_port:
            self.http = NodeHttp(self, self.http_host, self.http_port)
            await self.http.start()
        tasks = [asyncio.create_task(guarded(self, c)) for c in self._loops()]
        log.info(
            "node %d listening on %s:%d at height %d",
            self.me,
            addr.host,
            addr.port,
            self.consensus.height - 1,
        )
        try:
            await self.stop_event.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            closings = [self.pusher.close, self.dht.close, self.endpoint.close]
            if self.http is not None:
                closings.insert(0, self.http.close)
            for closing in closings:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(closing(), 5)
            self.close()

    def _loops(self) -> list[Coroutine[Any, Any, None]]:
        """Every task a serving node runs until it stops."""
        loops = [
            self.conns.accept_loop(),
            self._chain_loops(),
            self._gossip_loop(),
            self.tx.run(),
            status_loop(self),
            self._dht_loop(),
            *(self.conns.dial_loop(j) for j in range(self.me + 1, self.g.vset.n)),
        ]
        if self.executor.height > 0:  # a restart: peers may hold a dead connection to us
            loops += [self.conns.rejoin(j) for j in range(self.me)]
        return loops

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        """Release the store and worker pools (idempotent)."""
        self.executor.abandon()
        self.serving.close()
        self.boot.close()
        self.tx.close()
        self.work.shutdown(wait=False, cancel_futures=True)
        self.background.shutdown(wait=False, cancel_futures=True)
        self.db.close()
