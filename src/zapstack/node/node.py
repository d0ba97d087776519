"""``zap node``: one validator process -- the five pipelines wired to real QUIC.

Contract
--------
* A node home holds ``node.json`` (its keys) and ``db/`` (ZapDB), ``blocks/``
  (finalized blocks + certs), ``status.json`` (refreshed 4x a second, read by
  ``zap devnet``) and ``node.log`` (JSON lines).  The genesis file is
  ``<home>/genesis.json`` or ``<home>/../genesis.json``.
* Wiring: QUIC endpoint (qh3) with one stream handler per stream type:
  TX_SUBMIT -> tx receive pipeline (stages 1-5) -> mempool; PROPOSAL /
  CERT_SHARES / BLOCK_PUSH -> consensus (``node.consensus``); MEMPOOL_GOSSIP
  -> mempool; HEADER_RANGE / STATE_CHUNK -> the bootstrap server
  (``docs/formats/bootstrap.md``: finalized blocks + certs from the block
  store, state chunks of the last 4 finalized roots), which also pushes live
  blocks, admitted txs and our vote records to peers that subscribed;
  DHT_RPC / BLOCK_CHUNK -> the node's DHT (``node.blockdht``), which provides
  every finalized block by id.  Validators with a lower index dial the higher
  ones (one connection per pair, both directions).
* A restarted node resumes from its last committed block (ZapDB head) and
  catches up the heights it missed with the bootstrap client (HEADER_RANGE to
  every connected validator, every cert checked with ``verify_cert`` +
  ``accepted_tier``), before it votes again.
* With ``state_sync`` and an empty ZapDB the node first downloads the state of
  a recent finalized block from its peers (STATE_CHUNK, every chunk verified
  against the certified header's ``state_root``), then catches up and votes.
* Shutdown (SIGINT/SIGTERM or ``stop``) closes connections, the store and the
  worker pools; a kill -9 loses nothing committed (ZapDB + fsynced blocks).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import random
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zapstack.bootstrap.client import BootstrapClient
from zapstack.bootstrap.config import BootstrapConfig
from zapstack.bootstrap.events import HeadSeen
from zapstack.bootstrap.server import BootstrapServer
from zapstack.consensus import cert as cert_mod
from zapstack.dht.ids import Contact
from zapstack.errors import RemoteProtocolError, TransportError, WireCode, ZapError
from zapstack.mempool import Mempool
from zapstack.mempool.actions import TxAdmitted
from zapstack.mempool.handler import TxSubmitService
from zapstack.mempool.receive import TxReceiver
from zapstack.node.blockdht import NodeDht
from zapstack.node.blockstore import BlockStore
from zapstack.node.bootstrap_driver import (
    ClientDriver,
    DeferredApplier,
    PushWriter,
    StoreBlocks,
    cert_check,
)
from zapstack.node.consensus import Consensus, HeightRecord
from zapstack.node.genesis import Genesis, NodeKeys, load_genesis, load_node_keys
from zapstack.node.metrics import NodeMetrics
from zapstack.node.wire import MAX_MESSAGE, STREAM_OF, Message, MsgType, decode, encode
from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Endpoint, Peer, TransportConfig
from zapstack.transport.events import End, HandlerAction, Reject
from zapstack.transport.handler import StreamHandler, StreamInfo
from zapstack.transport.streams import StreamType
from zapstack.verify import Account, ThreadVerifier, account_key, apply_genesis
from zapstack.verify.executor import HEAD_HEIGHT_META, HEAD_ID_META, BlockExecutor
from zapstack.zap.frames import parse_tx
from zapstack.zap.schema import MAX_TX_SIZE
from zapstack.zap.views import BlockView
from zapstack.zapdb import ZapDB

__all__ = ["Node", "find_genesis"]

log = logging.getLogger("zapstack.node")

_U64 = struct.Struct("<Q")
MAX_GOSSIP = 4 * 1024 * 1024
"""Largest MEMPOOL_GOSSIP stream a node buffers."""
CATCH_UP_TIMEOUT = 60.0
"""Bound on one catch-up (seconds)."""
STATE_SYNC_TIMEOUT = 120.0
"""Bound on the state sync of an empty data dir (seconds)."""
_VOTES = frozenset({MsgType.SHARE, MsgType.CORONA_COMMIT})
"""Our consensus messages republished as VOTE records to subscribers."""
_MSG_TYPES = frozenset(int(t) for t in MsgType)


def find_genesis(home: Path) -> Path:
    """``home/genesis.json`` or ``home/../genesis.json``."""
    for candidate in (home / "genesis.json", home.parent / "genesis.json"):
        if candidate.exists():
            return candidate
    raise ZapError(f"no genesis.json in {home} or its parent")


class _Collect:
    """Buffers one whole message stream (bounded); hands it over at FIN."""

    def __init__(
        self,
        limit: int,
        done: Callable[[bytes], list[HandlerAction] | None],
        first: Callable[[int], list[HandlerAction]] | None = None,
    ) -> None:
        self.buf = bytearray()
        self.limit = limit
        self.done = done
        self.first = first
        """Checks the first byte as soon as it lands (a bad one stops the stream)."""

    def on_data(self, data: bytes) -> list[HandlerAction]:
        if not self.buf and data and self.first is not None:
            refused = self.first(data[0])
            if refused:
                return refused
        self.buf += data
        if len(self.buf) > self.limit:
            self.buf = bytearray()
            return [Reject(WireCode.STREAM_PROTOCOL_VIOLATION)]
        return []

    def on_end(self) -> list[HandlerAction]:
        data, self.buf = bytes(self.buf), bytearray()
        return self.done(data) or []

    def on_terminated(self, end: End, code: int | None) -> None:
        self.buf = bytearray()  # drop the partial buffer (RESET_STREAM / connection gone)


_SLOW = frozenset({MsgType.CORONA_COMMIT, MsgType.CORONA_SIGNERS, MsgType.CORONA_RESPONSE})
"""Messages of the slowest leg: handled only when nothing else waits, so Corona's
large round-1 traffic never delays the fast legs, proposals or FINALs."""


class _Inbox:
    """The consensus inbox: FIFO per class, fast messages before Corona ones."""

    def __init__(self) -> None:
        self._queue: asyncio.PriorityQueue[tuple[int, int, Message]] = asyncio.PriorityQueue()
        self._seq = 0

    def put(self, msg: Message) -> None:
        self._seq += 1
        self._queue.put_nowait((msg.type in _SLOW, self._seq, msg))

    async def get(self) -> Message:
        return (await self._queue.get())[2]

    def qsize(self) -> int:
        return self._queue.qsize()


class Node:
    """One validator; see the module docstring."""

    def __init__(
        self,
        home: Path,
        *,
        genesis: Genesis | None = None,
        binding: str = "qh3",
        metrics_port: int = 0,
        halt_height: int | None = None,
        state_sync: bool = False,
    ) -> None:
        self.home = home
        self.g = genesis or load_genesis(find_genesis(home))
        self.keys: NodeKeys = load_node_keys(home / "node.json", self.g)
        self.binding = binding
        self.metrics_port = metrics_port
        self.me = self.keys.index
        self.by_node_id = {a.node_id: a.index for a in self.g.addresses}
        self.peers: dict[int, Peer] = {}
        self.clients: list[Peer] = []
        self.inbox = _Inbox()
        self.gossip_out: list[bytes] = []
        self.started = time.monotonic()
        self.stop_event = asyncio.Event()
        self.work = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix=f"node{self.me}")
        self.db = ZapDB.open(home / "db")
        self.needs_sync = state_sync and self.db.meta_get(HEAD_HEIGHT_META) is None
        """Empty data dir + ``state_sync``: download a recent state before voting."""
        if not self.needs_sync:
            self._genesis_state()
        self.verifier = ThreadVerifier(2)
        self.blocks = BlockStore(home / "blocks")
        self.mempool = Mempool(nonce_floor=self._nonce_floor)
        self.rx = TxReceiver(self.mempool, chain_id=self.g.chain_id)
        self.txsvc = TxSubmitService(self.rx, clock=time.monotonic, stop_stream=self._stop_stream)
        self.halt_height = halt_height
        self._build_chain()
        self.boot = BootstrapServer(
            self.db, blocks=StoreBlocks(self.blocks), head=self.executor.height
        )
        if not self.needs_sync:
            self.boot.pin()
        self.pusher = PushWriter(self.boot, self._find_peer)
        self.dht: NodeDht | None = None
        self.metrics = NodeMetrics(self)
        self.endpoint: Endpoint | None = None
        self.catching_up = False
        self.sync_stats: dict[str, Any] = {}
        """What the state sync did (empty when none ran)."""

    def _build_chain(self) -> None:
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

    # ------------------------------------------------------------------ setup
    def _genesis_state(self) -> None:
        if self.db.meta_get(HEAD_HEIGHT_META) is not None:
            return
        txn = self.db.begin()
        try:
            apply_genesis(txn, self.g.allocations)
            txn.meta_set(HEAD_HEIGHT_META, _U64.pack(0))
            txn.meta_set(HEAD_ID_META, self.g.genesis_id)
            txn.commit()
        finally:
            txn.discard()

    def _nonce_floor(self, sender: bytes) -> int:
        view = self.db.read()
        try:
            return Account.decode(view.get(account_key(sender))).nonce
        finally:
            view.close()

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

    def send(self, to: int, msg: MsgType, height: int, round_: int, payload: bytes) -> None:
        data = encode(msg, height, round_, self.me, payload)
        if msg in _VOTES and len(data) <= 65536:
            self.boot.publish_vote(data)  # our vote, to VOTE-stream subscribers
            self.pusher.flush()
        if to == self.me:
            self.inbox.put(decode(data))
            return
        asyncio.get_running_loop().create_task(self._send(to, STREAM_OF[msg], data))

    def broadcast(self, msg: MsgType, height: int, round_: int, payload: bytes) -> None:
        for i in range(self.g.vset.n):
            self.send(i, msg, height, round_, payload)

    async def _send(self, to: int, stream: StreamType, data: bytes) -> None:
        peer = self.peers.get(to)
        if peer is None or peer.session.closed:
            return
        try:
            out = await peer.open_stream(stream)
            await out.finish(data)
        except (TransportError, ZapError) as exc:
            log.info("send to %d failed: %s", to, exc)

    # --------------------------------------------------------------- handlers
    def _handlers(self) -> dict[StreamType, Callable[[StreamInfo], StreamHandler]]:
        def consensus(info: StreamInfo) -> StreamHandler:
            sender = self.by_node_id.get(info.peer)

            def refuse(code: WireCode) -> list[HandlerAction]:
                self.rx.reputation.penalize(info.peer, code)  # one score per peer
                return [Reject(code)]

            def first(kind: int) -> list[HandlerAction]:
                if kind in _MSG_TYPES and STREAM_OF[MsgType(kind)] == info.stream_type:
                    return []
                return refuse(WireCode.STREAM_PROTOCOL_VIOLATION)

            def done(data: bytes) -> list[HandlerAction] | None:
                try:
                    msg = decode(data, info.stream_type)
                except RemoteProtocolError as exc:
                    return refuse(exc.code)
                if sender is None or msg.sender != sender:
                    return None  # not from the validator it claims to be: ignore
                self.inbox.put(msg)
                return None

            return _Collect(MAX_MESSAGE, done, first)

        def gossip(info: StreamInfo) -> StreamHandler:
            def done(data: bytes) -> list[HandlerAction] | None:
                self._take_gossip(data)
                return None

            return _Collect(MAX_GOSSIP, done)

        def bootstrap(info: StreamInfo) -> StreamHandler:
            return self.boot.handler(info.peer, info.stream_type)

        return {
            StreamType.TX_SUBMIT: self.txsvc.factory,
            StreamType.PROPOSAL: consensus,
            StreamType.CERT_SHARES: consensus,
            StreamType.BLOCK_PUSH: consensus,
            StreamType.MEMPOOL_GOSSIP: gossip,
            StreamType.HEADER_RANGE: bootstrap,
            StreamType.STATE_CHUNK: bootstrap,
        }

    def _stop_stream(self, peer: bytes, stream_id: int, code: int) -> None:
        for p in [*self.peers.values(), *self.clients]:
            if p.node_id == peer:
                p.stop_reading(stream_id, code)

    def _take_gossip(self, data: bytes) -> None:
        at = 0
        while at + 12 <= len(data):
            size = int.from_bytes(data[at + 8 : at + 12], "little")
            if not 0 < size <= MAX_TX_SIZE or at + size > len(data):
                return
            with contextlib.suppress(ZapError):
                self.mempool.insert(parse_tx(data[at : at + size], chain_id=self.g.chain_id))
            at += size

    def _find_peer(self, node_id: bytes) -> Peer | None:
        """A live connection to ``node_id`` (validator or client), newest first."""
        for p in [*reversed(self.clients), *self.peers.values()]:
            if p.node_id == node_id and not p.session.closed:
                return p
        return None

    # ------------------------------------------------------------------- loops
    async def _accept_loop(self) -> None:
        assert self.endpoint is not None
        while True:
            peer = await self.endpoint.inbound.get()
            index = self.by_node_id.get(peer.node_id)
            if index is not None and index != self.me:
                self.peers[index] = peer
            else:
                self.clients.append(peer)

    async def _dial_loop(self, j: int) -> None:
        assert self.endpoint is not None
        addr = self.g.addresses[j]
        while True:
            peer = self.peers.get(j)
            if peer is None or peer.session.closed:
                try:
                    self.peers[j] = await self.endpoint.dial(addr.host, addr.port, addr.node_id)
                except (TransportError, OSError):
                    await asyncio.sleep(0.3)
                    continue
            await asyncio.sleep(0.3)

    async def _rejoin(self, j: int) -> None:
        """A restarted validator dials validator ``j`` (below it) once: ``j`` still holds a
        connection to our previous process, which QUIC only declares dead at the idle
        timeout (30 s); our new connection replaces it at once (``_accept_loop``)."""
        assert self.endpoint is not None
        addr = self.g.addresses[j]
        for _ in range(20):
            try:
                self.peers[j] = await self.endpoint.dial(addr.host, addr.port, addr.node_id)
                return
            except (TransportError, OSError):
                await asyncio.sleep(0.3)

    async def _dial_once(self, j: int) -> None:
        """Connect to validator ``j`` unless a live connection exists (bounded)."""
        assert self.endpoint is not None
        peer = self.peers.get(j)
        if peer is None or peer.session.closed:
            a = self.g.addresses[j]
            with contextlib.suppress(TransportError, OSError):
                self.peers[j] = await self.endpoint.dial(a.host, a.port, a.node_id)

    async def _consensus_loop(self) -> None:
        while True:
            msg = await self.inbox.get()
            behind = msg.height > self.consensus.height and not self.consensus.halted
            if behind and msg.type is MsgType.FINAL:
                await self._catch_up(msg.sender, msg.height)
            try:
                await self.consensus.handle(msg)
            except ZapError as exc:
                log.warning("message %s from %d dropped: %s", msg.type.name, msg.sender, exc)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            self.txsvc.tick()
            while self.txsvc.outbox:
                action = self.txsvc.outbox.popleft()
                if isinstance(action, TxAdmitted):
                    view = self.mempool.get(action.result.tx_id)
                    if view is not None:
                        self.gossip_out.append(bytes(view.buffer))
            if not self.catching_up:
                try:
                    await self.consensus.tick()
                except ZapError as exc:
                    log.warning("consensus tick: %s", exc)

    async def _gossip_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            if not self.gossip_out:
                continue
            batch, self.gossip_out = self.gossip_out, []
            self.boot.publish_txs(batch)  # to MEMPOOL_GOSSIP subscribers
            self.pusher.flush()
            data = b"".join(batch)
            for j in list(self.peers):
                asyncio.get_running_loop().create_task(
                    self._send(j, StreamType.MEMPOOL_GOSSIP, data)
                )

    async def _status_loop(self) -> None:
        path = self.home / "status.json"
        while True:
            status = self.status()
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(status), encoding="utf-8")
            os.replace(tmp, path)
            self.metrics.update(status)
            await asyncio.sleep(0.25)

    # -------------------------------------------------------------- catch-up
    def _live_peers(self) -> list[Peer]:
        return [p for p in self.peers.values() if not p.session.closed]

    async def _catch_up(self, source: int, target: int) -> None:
        """Fetch, verify and commit the heights below ``target`` (at least).

        The bootstrap client in follow mode (``resume`` at our head) asks every
        connected validator for its latest block and fetches the gaps over
        HEADER_RANGE; every block passes :func:`cert_check` (``verify_cert`` +
        ``accepted_tier``) and the frame checks, then ``Consensus.commit``
        re-executes it and checks its state root.
        """
        peers = self._live_peers()
        if not peers or self.catching_up or self.consensus.halted:
            return
        self.catching_up = True
        applier = DeferredApplier()
        config = BootstrapConfig(subscribe=0, chain_id=self.g.chain_id)
        client = BootstrapClient(self.db, cert_check(self.g), applier, config)
        client.resume(self.executor.height, self.executor.head, self.db.root())
        driver = ClientDriver(client)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_TIMEOUT
        try:
            for p in peers:
                driver.attach(p)
            while self.consensus.height < target and loop.time() < deadline:
                await driver.wait(lambda: bool(applier.queue), deadline - loop.time())
                while applier.queue:
                    block, cert = applier.queue.popleft()
                    round_ = cert_mod.decode(cert).round
                    await self.consensus.commit(block, cert, round_, source)
        except (ZapError, TransportError) as exc:
            log.warning("catch-up towards %d failed: %s", target, exc)
        finally:
            await driver.close()
            self.catching_up = False

    async def _state_sync(self) -> None:
        """Empty data dir: download and verify a recent finalized state from peers."""
        kept: dict[int, tuple[bytes, bytes]] = {}
        real = cert_check(self.g)

        def check(view: BlockView, cert: bytes) -> bool:
            ok = real(view, cert)
            if ok and len(kept) < 64:
                kept.setdefault(view.height, (bytes(view.buffer), cert))
            return ok

        applier = DeferredApplier()
        config = BootstrapConfig(subscribe=0, chain_id=self.g.chain_id)
        client = BootstrapClient(self.db, check, applier, config)
        heads: dict[bytes, int] = {}
        driver = ClientDriver(
            client,
            on_event=lambda e: (
                heads.update({e.peer: e.height}) if isinstance(e, HeadSeen) else None
            ),
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            # dial every validator we are not connected to (a restarted node's peers may
            # still hold a dead connection to it), so chunks come from all of them
            await asyncio.gather(
                *(self._dial_once(j) for j in range(self.g.vset.n) if j != self.me),
                return_exceptions=True,
            )
            while not client.done and loop.time() - started < STATE_SYNC_TIMEOUT:
                for p in self._live_peers():
                    driver.attach(p)  # peers as they connect (idempotent per peer)
                if (
                    client.target is None
                    and len(heads) >= self.g.vset.n - 1
                    and not any(heads.values())
                ):
                    break  # every peer is at genesis: nothing to download
                await driver.wait(lambda: client.done, 0.3)
        finally:
            await driver.close()
        if client.target is None and heads and not any(heads.values()):
            self._genesis_state()
            self._build_chain()
            self.boot.pin()
            self.needs_sync = False
            self.sync_stats = {"height": 0, "peers": len(heads), "genesis": True}
            return
        synced, target = client.synced, client.target
        if synced is None or target is None:
            raise ZapError("state sync did not complete")
        block, cert = kept[target.height]
        await self.run(self.blocks.put, target.height, block, cert)
        self._build_chain()
        self.boot.head = target.height
        self.boot.pin()
        self.needs_sync = False
        self.sync_stats = {
            "height": synced.height,
            "root": synced.root.hex(),
            "chunks": synced.chunks,
            "entries": synced.entries,
            "peers": len(driver.peers),
            "chunk_peers": len({p for p, st in driver.opened if st is StreamType.STATE_CHUNK}),
            "seconds": round(loop.time() - started, 3),
        }
        log.info("state synced at height %d: %s", target.height, self.sync_stats)
        for block, cert in applier.queue:  # blocks above the target the client checked
            await self.consensus.commit(block, cert, cert_mod.decode(cert).round, -1)

    async def _final(self, record: HeightRecord, block: bytes) -> None:
        self.metrics.finalized(record)
        cert = self.blocks.cert(record.height)
        if cert is not None:
            self.boot.add_finalized(block, cert)  # serve it, pin its state, push it
            self.pusher.flush()
        if self.dht is not None:
            self.dht.remember(record.height, block)
            asyncio.get_running_loop().create_task(self._provide(record.height, block))

    async def _provide(self, height: int, block: bytes) -> None:
        assert self.dht is not None
        try:
            await self.dht.provide_block(height, block)
        except (TimeoutError, TransportError, ZapError) as exc:
            log.info("provide of height %d failed: %s", height, exc)

    # -------------------------------------------------------------------- DHT
    def _dht_seeds(self) -> list[Contact]:
        return [
            Contact(a.node_id, f"{a.host}:{a.port}") for a in self.g.addresses if a.index != self.me
        ]

    async def _dht_loop(self) -> None:
        """Join the DHT off the other validators; retry while the table is short."""
        assert self.dht is not None and self.dht.node is not None
        seeds = self._dht_seeds()
        held: list[tuple[int, bytes]] = []
        for h in range(max(1, self.executor.height - 63), self.executor.height + 1):
            block = self.blocks.block(h)  # restart: serve what we hold by id again
            if block is not None:
                self.dht.remember(h, block)
                held.append((h, block))
        while True:
            if len(self.dht.node.routing) < len(seeds):
                with contextlib.suppress(TimeoutError, TransportError, ZapError):
                    await asyncio.wait_for(self.dht.bootstrap(seeds), 10)
            if held:  # ... and announce it again: provider records do not survive a restart
                for h, block in held:
                    await self._provide(h, block)
                held = []
            await asyncio.sleep(1.0 if len(self.dht.node.routing) < len(seeds) else 5.0)

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        pstats = self.mempool.stats
        rejects = {stage.name: n for stage, n in pstats.rejects_by_stage().items()}
        admitted = pstats.admitted
        return {
            "index": self.me,
            "pid": os.getpid(),
            "height": self.consensus.height - 1,
            "round": self.consensus.round,
            "head": self.executor.head.hex(),
            "state_root": self.db.root().hex(),
            "mempool": len(self.mempool),
            "admitted": admitted,
            "rejects": rejects,
            "peers": sorted(i for i, p in self.peers.items() if not p.session.closed),
            "stats": dict(self.consensus.stats),
            "recent": [dataclasses.asdict(r) for r in self.consensus.history[-20:]],
            "uptime_s": round(time.monotonic() - self.started, 1),
            "halted": self.consensus.halted,
            "fatal": None if self.consensus.fatal is None else str(self.consensus.fatal),
            "sync": self.sync_stats,
            "dht": {
                "contacts": len(self.dht.node.routing) if self.dht and self.dht.node else 0,
                "provided": self.dht.provided if self.dht else 0,
            },
            "pushes": self.pusher.pushed,
        }

    # -------------------------------------------------------------------- run
    async def serve(self) -> None:
        """Run until :meth:`stop`; always cleans up."""
        binding = BINDINGS[self.binding]()
        addr = self.g.addresses[self.me]
        self.endpoint = Endpoint(binding, self.keys.identity, self._handlers(), TransportConfig())
        self.dht = NodeDht(
            self.endpoint, f"{addr.host}:{addr.port}", self.blocks, rng=random.Random(self.me)
        )
        self.endpoint.handlers.update(self.dht.handlers())
        await self.endpoint.listen(addr.host, addr.port)
        await self.dht.start()
        if self.metrics_port:
            self.metrics.serve(self.metrics_port)
        tasks = [
            asyncio.create_task(self._accept_loop()),
            asyncio.create_task(self._chain_loops()),
            asyncio.create_task(self._gossip_loop()),
            asyncio.create_task(self._status_loop()),
            asyncio.create_task(self._dht_loop()),
            *(asyncio.create_task(self._dial_loop(j)) for j in range(self.me + 1, self.g.vset.n)),
        ]
        if self.executor.height > 0:  # a restart: peers may hold a dead connection to us
            tasks += [asyncio.create_task(self._rejoin(j)) for j in range(self.me)]
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
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pusher.close(), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.dht.close(), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.endpoint.close(), 5)
            self.close()

    async def _chain_loops(self) -> None:
        """State-sync first when the data dir is empty, then run consensus."""
        if self.needs_sync:
            try:
                await self._state_sync()
            except ZapError as exc:
                log.error("state sync failed: %s", exc)
                self.stop()
                return
        await asyncio.gather(self._consensus_loop(), self._tick_loop())

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        """Release the store and worker pools (idempotent)."""
        self.executor.abandon()
        self.boot.close()
        self.verifier.close()
        self.work.shutdown(wait=False, cancel_futures=True)
        self.db.close()
