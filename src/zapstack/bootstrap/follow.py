"""Following live blocks after the state sync: checks, ordering, application.

Contract
--------
A bootstrapping node learns finalized blocks from three places -- HEADER_RANGE
replies, BLOCK_PUSH streams of every peer, and the target block itself -- in
any order and with duplicates.  :class:`BlockBuffer` keeps the ones above the
applied head, keyed by height, each already *checked*: the frame parses
(structure, roots, proposer signature: :func:`~zapstack.zap.frames.parse_block`)
and the injected :data:`CertCheck` accepts its certificate (a node wires
:class:`~zapstack.consensus.finality.FinalityLedger` / ``verify_cert`` here).
Two different certified blocks at one height are a fork the finality rule
forbids: the second is refused and its sender blamed.

Blocks are applied strictly in height order by an :class:`Applier`; the
production one, :class:`ExecutorApplier`, is the verify pipeline's
:class:`~zapstack.verify.executor.BlockExecutor` (receive on a speculative
branch, finalize = commit), which also checks the post-state root against the
header.  An apply failure drops that block so it is fetched again elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from zapstack.verify.executor import BlockExecutor, ChainStore
from zapstack.verify.parallel import Verifier
from zapstack.zap.frames import parse_block
from zapstack.zap.views import BlockView

__all__ = ["Applier", "BlockBuffer", "CertCheck", "CheckedBlock", "ExecutorApplier"]

CertCheck = Callable[[BlockView, bytes], bool]
"""``check(block, cert_bytes)``: True iff ``cert_bytes`` finalizes ``block`` under the
chain's validator set and CertPolicy."""


class Applier(Protocol):
    """Applies finalized blocks, in height order, to the node's ZapDB."""

    def apply(self, block: BlockView, cert: bytes) -> bytes:
        """Apply and commit ``block``; return the post-state root.

        Raises :class:`~zapstack.errors.InvalidBlock` (nothing committed) if it
        does not apply to the current head.
        """
        ...


@dataclass(frozen=True, slots=True)
class CheckedBlock:
    """A parsed block whose certificate passed the :data:`CertCheck`."""

    view: BlockView
    """Zero-copy view of the block bytes."""
    cert: bytes
    """Its certificate bytes."""
    source: bytes
    """The peer it came from (blamed if it later fails to apply)."""


class BlockBuffer:
    """Checked blocks above the applied head, by height (see the module docstring)."""

    def __init__(self, check: CertCheck, *, chain_id: int | None = None) -> None:
        self._check = check
        self._chain_id = chain_id
        self._blocks: dict[int, CheckedBlock] = {}
        self.floor = 0
        """Blocks at or below this height are dropped on arrival (applied/synced)."""

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def top(self) -> int:
        """Highest buffered height (``floor`` when empty)."""
        return max(self._blocks, default=self.floor)

    def check(self, block: bytes, cert: bytes, source: bytes) -> CheckedBlock | None:
        """Parse and cert-check ``block``; None if the cert is refused.

        Raises RemoteProtocolError (from the frame parser) for a malformed block.
        """
        view = parse_block(block, chain_id=self._chain_id)
        return CheckedBlock(view, cert, source) if self._check(view, cert) else None

    def add(self, checked: CheckedBlock) -> bool:
        """Buffer ``checked``; False if it conflicts with a different block at its height."""
        height = checked.view.height
        if height <= self.floor:
            return True
        held = self._blocks.get(height)
        if held is None:
            self._blocks[height] = checked
            return True
        return held.view.block_id == checked.view.block_id

    def pop(self, height: int) -> CheckedBlock | None:
        """Remove and return the block at ``height`` if buffered."""
        return self._blocks.pop(height, None)

    def missing(self, upto: int) -> list[int]:
        """Heights in ``floor+1 .. upto`` not buffered."""
        return [h for h in range(self.floor + 1, upto + 1) if h not in self._blocks]

    def raise_floor(self, height: int) -> None:
        """Drop everything at or below ``height``."""
        self.floor = max(self.floor, height)
        for h in [h for h in self._blocks if h <= self.floor]:
            del self._blocks[h]


class ExecutorApplier:
    """:class:`Applier` over the verify pipeline's :class:`BlockExecutor`.

    The executor is created on first use, i.e. after the state sync committed
    the synced state with its head metadata, so it starts from that head.
    """

    def __init__(self, db: ChainStore, verifier: Verifier, *, chain_id: int | None = None) -> None:
        self._db = db
        self._verifier = verifier
        self._chain_id = chain_id
        self._executor: BlockExecutor | None = None

    def apply(self, block: BlockView, cert: bytes) -> bytes:
        if self._executor is None:
            self._executor = BlockExecutor(self._db, self._verifier, chain_id=self._chain_id)
        candidate = self._executor.receive(block)
        return self._executor.finalize(candidate.receipt.block_id).state_root
