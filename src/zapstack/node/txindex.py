"""The node's chain index: block id -> height, tx id -> where it was included.

Contract
--------
* :class:`ChainIndex` answers "which height holds block id X" and "in which
  block, at which position, was tx X included" for every finalized block it
  was shown, plus "was tx X rejected, and why" for the last
  :attr:`ChainIndex.max_rejects` stage-5 rejections (a bounded FIFO map: a
  tx rejected long ago reads as unknown).
* It lives in memory only.  A node feeds it every block it finalizes
  (:meth:`ChainIndex.finalized`, one call from ``Node._final``); after a
  restart :meth:`ChainIndex.rebuild` re-reads the finalized blocks from the
  block store (``blocks/``, the source of truth), so nothing is persisted
  twice and the index can never disagree with the blocks.  Rebuilding costs
  one parse per held block (no signature checks: the node verified them
  before it stored them); the HTTP API runs it once, on a worker thread, at
  its first request that needs it.
* Listeners (:meth:`ChainIndex.listen`) are called with every finalized
  ``(height, block, cert)`` on the caller's thread, after the block is
  indexed; a listener must not block (the HTTP block subscription only puts
  the height into bounded queues).
* Finalized blocks are included only once per height; a tx id is indexed at
  its first inclusion (a finalized chain never includes a tx id twice: the
  sender's nonce moved).  Dict operations are atomic under the GIL, so a
  rebuild on a worker thread may race live :meth:`finalized` calls.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from zapstack.errors import WireCode, ZapError
from zapstack.zap.frames import parse_block

__all__ = ["ChainIndex", "Inclusion", "Listener", "Rejection"]

log = logging.getLogger("zapstack.node")

Listener = Callable[[int, bytes, bytes], None]
"""``(height, block bytes, cert bytes)`` of a block just finalized."""


class Blocks(Protocol):
    """What :meth:`ChainIndex.rebuild` reads (a :class:`~zapstack.node.blockstore.BlockStore`)."""

    def block(self, height: int) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Inclusion:
    """Where a finalized block holds a tx."""

    height: int
    """The block's height."""
    index: int
    """The tx's position in the block (0-based)."""
    block_id: bytes
    """sha256 of the block's bytes."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A stage-5 verdict against a submitted tx."""

    code: WireCode
    """The reject code (``DUPLICATE``, ``NONCE_TOO_LOW``, ``INSUFFICIENT_BALANCE``, ...)."""
    reason: str
    """The pool's one-line reason."""


class ChainIndex:
    """See the module contract."""

    def __init__(self, max_rejects: int = 4096) -> None:
        self.max_rejects = max_rejects
        """Most recent rejections remembered."""
        self._heights: dict[bytes, int] = {}
        self._ids: dict[int, bytes] = {}
        """Height -> block id (the reverse of ``_heights``)."""
        self._txs: dict[bytes, int] = {}
        """Tx id -> ``height << 32 | index``: an int, not an :class:`Inclusion` object, so
        the index (one entry per tx ever finalized) holds nothing the garbage collector
        must scan -- as objects, a busy chain's index made every full collection longer."""
        self._rejects: OrderedDict[bytes, Rejection] = OrderedDict()
        self._listeners: list[Listener] = []
        self._rebuilt = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ feeding
    def add_block(self, height: int, block: bytes) -> None:
        """Index one finalized block (idempotent).  Raises ZapError on malformed bytes."""
        view = parse_block(block, verify_signatures=False)
        if view.height != height:
            raise ZapError(f"block file {height} holds height {view.height}")
        block_id = view.block_id
        if self._heights.get(block_id) == height:
            return
        self._heights[block_id] = height
        self._ids[height] = block_id
        at = height << 32
        for i, tx in enumerate(view.txs()):
            self._txs.setdefault(tx.tx_id, at | i)

    def finalized(self, height: int, block: bytes, cert: bytes) -> None:
        """The node finalized ``height``: index it, then tell the listeners."""
        try:
            self.add_block(height, block)
        except ZapError as exc:  # the engine verified it: a bug, not the peer's fault
            log.error("chain index: block %d not indexed: %s", height, exc)
        for listener in list(self._listeners):
            listener(height, block, cert)

    def rejected(self, tx_id: bytes, code: WireCode, reason: str = "") -> None:
        """Remember a stage-5 rejection (the oldest is forgotten past ``max_rejects``)."""
        if not tx_id:
            return
        self._rejects.pop(tx_id, None)
        self._rejects[tx_id] = Rejection(code, reason)
        while len(self._rejects) > self.max_rejects:
            self._rejects.popitem(last=False)

    def rebuild(self, blocks: Blocks, top: int) -> int:
        """Index the held blocks ``1..top`` once per index; returns how many were read."""
        with self._lock:
            if self._rebuilt:
                return 0
            read = 0
            for height in range(1, top + 1):
                data = blocks.block(height)
                if data is None:  # pruned or damaged: BlockStore logged it
                    continue
                try:
                    self.add_block(height, data)
                except ZapError as exc:
                    log.error("chain index: block file %d skipped: %s", height, exc)
                    continue
                read += 1
            self._rebuilt = True
            return read

    @property
    def rebuilt(self) -> bool:
        """Whether :meth:`rebuild` has run."""
        return self._rebuilt

    # ------------------------------------------------------------------ reading
    def height_of(self, block_id: bytes) -> int | None:
        """The height of a finalized block id, or None."""
        return self._heights.get(block_id)

    def inclusion(self, tx_id: bytes) -> Inclusion | None:
        """Where ``tx_id`` was included, or None."""
        at = self._txs.get(tx_id)
        if at is None:
            return None
        height = at >> 32
        return Inclusion(height, at & 0xFFFF_FFFF, self._ids[height])

    def rejection(self, tx_id: bytes) -> Rejection | None:
        """The last remembered rejection of ``tx_id``, or None."""
        return self._rejects.get(tx_id)

    # ---------------------------------------------------------------- listeners
    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on every finalized block; returns the function that stops it."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    @property
    def listeners(self) -> int:
        """Listeners attached now."""
        return len(self._listeners)
