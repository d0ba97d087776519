"""Catch-up and state sync: how a validator that is behind gets to the chain's head.

Contract
--------
* **Catch-up** (:meth:`ChainSync.catch_up`, on a FINAL above our height): the
  bootstrap client in follow mode (``resume`` at our head) asks every
  connected validator for its latest block and fetches the gaps over
  HEADER_RANGE; every block passes :func:`~zapstack.node.bootstrap_driver.cert_check`
  (``verify_cert`` + ``accepted_tier``) and the frame checks, then
  ``Consensus.commit`` re-executes it and checks its state root.  One
  catch-up runs at a time (:attr:`ChainSync.catching_up`: the consensus
  timer pauses meanwhile), bounded by ``CATCH_UP_TIMEOUT``; its result is
  logged at INFO (``caught up N heights (a -> b) from validators [..] after a
  FINAL of v, in s``), a failure at WARNING, and the next FINAL above us
  tries again.  :attr:`ChainSync.heights` keeps the height each validator's
  messages named (:class:`~zapstack.node.health.PeerHeights`: is this node
  behind?).
* **State sync** (:meth:`ChainSync.state_sync`, ``state_sync`` with an empty
  ZapDB, before consensus starts): dial every validator, download the state
  of a recent finalized block (STATE_CHUNK, every chunk verified against the
  certified header's ``state_root``), store that block + cert, rebuild the
  executor and consensus on it, then commit the checked blocks above it.  When
  every peer is still at genesis the node starts from its own genesis state.
  Bounded by progress, not by a total time (:mod:`zapstack.node.syncwatch`): no
  target block, chunk depth or verified chunk for ``STATE_SYNC_STALL_S`` raises
  ``ZapError`` with what it had reached (the node stops); a progress line is logged at
  INFO every ``STATE_SYNC_REPORT_S`` while chunks come, and :meth:`ChainSync.progress`
  is the status record meanwhile (status ``state_sync``).  When the peers stop serving
  the target's state root (its chunks refused ``NOT_FOUND``, no progress for
  ``STATE_SYNC_RETARGET_S``: the sync outlived their ``state_hold_blocks``), the sync
  starts over at a newer block, logged at WARNING, at most ``STATE_SYNC_RETARGETS``
  times.  :attr:`ChainSync.stats` says what it did (status ``sync``).

Both run on the node's event loop and always close their client driver
(``finally``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from zapstack.bootstrap.client import BootstrapClient
from zapstack.bootstrap.config import BootstrapConfig
from zapstack.bootstrap.events import HeadSeen
from zapstack.consensus import cert as cert_mod
from zapstack.errors import TransportError, WireCode, ZapError
from zapstack.node.bootstrap_driver import ClientDriver, DeferredApplier, cert_check
from zapstack.node.config import (
    CATCH_UP_TIMEOUT,
    STATE_SYNC_REPORT_S,
    STATE_SYNC_RETARGET_S,
    STATE_SYNC_RETARGETS,
    STATE_SYNC_STALL_S,
)
from zapstack.node.health import PeerHeights
from zapstack.node.syncwatch import SyncWatch
from zapstack.transport.streams import StreamType
from zapstack.zap.views import BlockView

if TYPE_CHECKING:
    from zapstack.node.node import Node

__all__ = ["ChainSync", "refusals"]

log = logging.getLogger("zapstack.node")

KEEP_BLOCKS = 64
"""Checked blocks (with certs) a state sync keeps to store its target block."""
SYNC_POLL_S = 0.3
"""How often a state sync attaches newly connected peers."""


def refusals(refused: Mapping[tuple[StreamType, int], int]) -> str:
    """What the peers refused, for a failure message: ``; refused: STATE_CHUNK NOT_FOUND
    x12, ...`` (most first; '' if nothing), and what a STATE_CHUNK NOT_FOUND means: the
    peers no longer keep the target root (they keep one ``state_hold_blocks`` blocks at
    most after it falls out of their last few)."""
    if not refused:
        return ""
    parts = []
    for (stream_type, code), n in sorted(refused.items(), key=lambda kv: (-kv[1], kv[0])):
        try:
            name = WireCode(code).name
        except ValueError:
            name = f"0x{code:02x}"
        parts.append(f"{stream_type.name} {name} x{n}")
    text = "; refused: " + ", ".join(parts)
    if (StreamType.STATE_CHUNK, WireCode.NOT_FOUND) in refused:
        text += " (NOT_FOUND: the peers no longer serve the target's state root)"
    return text


class ChainSync:
    """A node's catch-up and state sync; see the module contract."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.catching_up = False
        """True while a catch-up runs (the consensus timer waits)."""
        self.stats: dict[str, Any] = {}
        """What the state sync did (empty when none ran)."""
        self.heights = PeerHeights(node.g.vset.n, node.me)
        """The latest height each validator's consensus messages named."""
        self.watch: SyncWatch | None = None
        """The running state sync's progress (None when none runs)."""

    def progress(self) -> dict[str, Any] | None:
        """The running state sync's status record, as of its last poll (None: none runs)."""
        watch = self.watch
        return None if watch is None else watch.record(watch.now)

    def _client(
        self, check: Callable[[BlockView, bytes], bool]
    ) -> tuple[BootstrapClient, DeferredApplier]:
        node = self.node
        applier = DeferredApplier()
        config = BootstrapConfig(subscribe=0, chain_id=node.g.chain_id)
        return BootstrapClient(node.db, check, applier, config), applier

    # ---------------------------------------------------------------- catch-up
    async def catch_up(self, source: int, target: int) -> None:
        """Fetch, verify and commit the heights below ``target`` (at least)."""
        node = self.node
        peers = node.conns.live()
        if not peers or self.catching_up or node.consensus.halted:
            return
        self.catching_up = True
        client, applier = self._client(cert_check(node.g))
        client.resume(node.executor.height, node.executor.head, node.db.root())
        driver = ClientDriver(client)
        loop = asyncio.get_running_loop()
        started, start_height = loop.time(), node.executor.height
        deadline = started + CATCH_UP_TIMEOUT
        try:
            for p in peers:
                driver.attach(p)
            while node.consensus.height < target and loop.time() < deadline:
                await driver.wait(lambda: bool(applier.queue), deadline - loop.time())
                while applier.queue:
                    block, cert = applier.queue.popleft()
                    round_ = cert_mod.decode(cert).round
                    await node.consensus.commit(block, cert, round_, source)
        except (ZapError, TransportError) as exc:
            log.warning("catch-up towards %d failed: %s", target, exc)
        finally:
            await driver.close()
            self.catching_up = False
        done = node.executor.height - start_height
        log.info(
            "caught up %d heights (%d -> %d) from validators %s after a FINAL of %d, in %.2f s",
            done,
            start_height,
            node.executor.height,
            sorted(node.conns.by_node_id.get(p.node_id, -1) for p in peers),
            source,
            loop.time() - started,
        )

    # -------------------------------------------------------------- state sync
    async def state_sync(self) -> None:
        """Empty data dir: download and verify a recent finalized state from peers."""
        kept: dict[int, tuple[bytes, bytes]] = {}
        real = cert_check(self.node.g)

        def check(view: BlockView, cert: bytes) -> bool:
            ok = real(view, cert)
            if ok and len(kept) < KEEP_BLOCKS:
                kept.setdefault(view.height, (bytes(view.buffer), cert))
            return ok

        heads: dict[bytes, int] = {}
        started = asyncio.get_running_loop().time()
        self.watch = self.new_watch(started)
        refused_before = 0  # NOT_FOUND refusals of the drivers closed by a start over
        try:
            while True:
                client, applier = self._client(check)
                driver = ClientDriver(
                    client,
                    on_event=lambda e: (
                        heads.update({e.peer: e.height}) if isinstance(e, HeadSeen) else None
                    ),
                )
                try:
                    again = await self._download(client, driver, heads, refused_before)
                finally:
                    await driver.close()
                if not again:
                    break
                refused_before += driver.refused[StreamType.STATE_CHUNK, WireCode.NOT_FOUND]
                kept.clear()  # the next target is another block: keep the blocks from there
        finally:
            self.watch = None
        if client.target is None and heads and not any(heads.values()):
            self._start_at_genesis(len(heads))
            return
        await self._adopt(client, driver, kept, started)
        for block, cert in applier.queue:  # blocks above the target the client checked
            await self.node.consensus.commit(block, cert, cert_mod.decode(cert).round, -1)

    @staticmethod
    def new_watch(now: float) -> SyncWatch:
        """The progress watch of a state sync starting at ``now`` (the config's bounds)."""
        return SyncWatch(
            now,
            STATE_SYNC_STALL_S,
            STATE_SYNC_REPORT_S,
            retarget_s=STATE_SYNC_RETARGET_S,
            retargets=STATE_SYNC_RETARGETS,
        )

    async def _download(
        self,
        client: BootstrapClient,
        driver: ClientDriver,
        heads: dict[bytes, int],
        refused_before: int = 0,
    ) -> bool:
        """Run the client against every validator until it is done, or all sit at genesis
        (False), or the peers stopped serving its target's root (True: start over, once
        :meth:`SyncWatch.retarget_due <zapstack.node.syncwatch.SyncWatch.retarget_due>`);
        ZapError once it makes no progress for ``STATE_SYNC_STALL_S``.  ``self.watch``
        tracks it; ``refused_before``: NOT_FOUND refusals of earlier drivers."""
        node = self.node
        loop = asyncio.get_running_loop()
        watch = self.watch
        assert watch is not None
        # dial every validator we are not connected to (a restarted node's peers may
        # still hold a dead connection to it), so chunks come from all of them
        await asyncio.gather(
            *(node.conns.dial_once(j) for j in range(node.g.vset.n) if j != node.me),
            return_exceptions=True,
        )
        while not client.done:
            now = loop.time()
            not_found = refused_before + driver.refused[StreamType.STATE_CHUNK, WireCode.NOT_FOUND]
            target = None if client.target is None else client.target.height
            watch.observe(target, client.progress, now, not_found)
            if watch.retarget_due(now):
                watch.retargeted(now)
                log.warning(
                    "state sync: the peers no longer serve the state root of height %s "
                    "(NOT_FOUND, no progress for %.0f s); starting over at a newer block "
                    "(%d of %d)",
                    target,
                    STATE_SYNC_RETARGET_S,
                    watch.retargets,
                    STATE_SYNC_RETARGETS,
                )
                return True
            if watch.stalled(now):
                linked = node.conns.connected()
                raise ZapError(
                    f"{watch.failure(now)}; validators connected: {linked or 'none'}"
                    + refusals(driver.refused)
                )
            if (line := watch.line(now)) is not None:
                log.info("%s", line)
            for p in node.conns.live():
                driver.attach(p)  # peers as they connect (idempotent per peer)
            if (
                client.target is None
                and len(heads) >= node.g.vset.n - 1
                and not any(heads.values())
            ):
                break  # every peer is at genesis: nothing to download
            await driver.wait(lambda: client.done, SYNC_POLL_S)
        return False

    def _start_at_genesis(self, peers: int) -> None:
        """Every peer is at genesis: start from our own genesis state."""
        node = self.node
        node.init_genesis_state()
        node.build_chain()
        node.boot.pin()
        node.needs_sync = False
        self.stats = {"height": 0, "peers": peers, "genesis": True}

    async def _adopt(
        self,
        client: BootstrapClient,
        driver: ClientDriver,
        kept: dict[int, tuple[bytes, bytes]],
        started: float,
    ) -> None:
        """Store the synced target block + cert and rebuild the chain on its state."""
        node = self.node
        synced, target = client.synced, client.target
        if synced is None or target is None:
            raise ZapError("state sync did not complete")
        block, cert = kept[target.height]
        await node.run(node.blocks.put, target.height, block, cert)
        node.build_chain()
        node.boot.head = target.height
        node.boot.pin()
        node.needs_sync = False
        self.stats = {
            "height": synced.height,
            "root": synced.root.hex(),
            "chunks": synced.chunks,
            "entries": synced.entries,
            "peers": len(driver.peers),
            "chunk_peers": len({p for p, st in driver.opened if st is StreamType.STATE_CHUNK}),
            "seconds": round(asyncio.get_running_loop().time() - started, 3),
        }
        log.info("state synced at height %d: %s", target.height, self.stats)
