"""The serial phase and the block executor: apply verified blocks to ZapDB.

Theory of operation
-------------------
:func:`execute_block` is the serial phase of the verify pipeline.  It runs
only after the parallel phase joined (a :class:`VerdictSlice`): a block with
any rejected signature is rejected as a whole before a single write.  Then,
in block order, each tx is bracketed by the txn's ``begin_tx``/``end_tx``
(ZapDB per-tx diff capture) and applied by the state model
(:mod:`zapstack.verify.state`); a tx failing an order-dependent check (nonce,
balance) is rolled back with ``txn.rollback(diff)`` -- O(diff) -- and the
block is rejected with :class:`InvalidBlock` carrying the tx index and the
tx's wire code.  After the last tx the post-state root must equal the
header's ``state_root`` (else ``BAD_STATE_ROOT``).  The caller discards the
txn/branch of a rejected block: it never reaches state apply (commit).

:func:`execute_candidates` is the proposer's variant (Build stage): a failing
tx is rolled back and *left out*, the others stay.

:class:`BlockExecutor` is the validator's chain: it receives block bytes,
discards a block whose height is already finalized (the late block of a fork
race) before any work, verifies and executes candidates for the next height on
speculative ZapDB branches (at most ``max_candidates``), and commits exactly
one of them on :meth:`BlockExecutor.finalize`, discarding the rest.  There is
no other path to a commit, so no competing block is ever applied at a
finalized height.

Threads: one thread drives an executor (the verifier parallelises inside).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from zapstack.errors import InvalidBlock, InvalidTx, LocalProtocolError, WireCode
from zapstack.verify.parallel import VerdictSlice, Verifier
from zapstack.verify.state import StateTxn, account_id, apply_tx
from zapstack.zap.frames import parse_block
from zapstack.zap.views import BlockView, TxView

__all__ = [
    "HEAD_HEIGHT_META",
    "HEAD_ID_META",
    "BlockExecutor",
    "BlockReceipt",
    "BlockTxn",
    "Candidate",
    "ChainStore",
    "TxFailure",
    "execute_block",
    "execute_candidates",
]

D = TypeVar("D")

HEAD_HEIGHT_META = b"verify/head_height"
"""ZapDB metadata: finalized height, u64 LE (committed with the block's writes)."""
HEAD_ID_META = b"verify/head_id"
"""ZapDB metadata: finalized block id (32 bytes)."""

_U64 = struct.Struct("<Q")


class BlockTxn(StateTxn, Protocol[D]):
    """What the executor needs of a ZapDB ``Txn``/``Branch`` (``D`` = its diff type)."""

    def begin_tx(self) -> None:
        """Start capturing one tx's diff."""
        ...

    def end_tx(self) -> D:
        """Finish the tx; return its diff."""
        ...

    def rollback(self, diff: D) -> bool:
        """Undo ``diff`` in O(diff); idempotent."""
        ...

    def root(self) -> bytes:
        """State root as if committed now."""
        ...


@dataclass(frozen=True, slots=True)
class BlockReceipt:
    """A block that passed both phases and matched its state root."""

    block_id: bytes
    """sha256(block bytes)."""
    height: int
    """Block height."""
    state_root: bytes
    """Post-state root (equal to the header's)."""
    tx_count: int
    """Txs applied."""


@dataclass(frozen=True, slots=True)
class TxFailure:
    """A tx the proposer left out of a block (rolled back on the build branch)."""

    index: int
    """Position among the candidates handed to :func:`execute_candidates`."""
    tx_id: bytes
    """The tx's id."""
    code: WireCode
    """Why (``BAD_NONCE``, ``INSUFFICIENT_BALANCE``, ...)."""
    nonce_ahead: bool
    """True if only its nonce is ahead of the account's (may become valid later)."""


def _apply_one(txn: BlockTxn[D], tx: TxView, proposer: bytes, index: int) -> InvalidTx | None:
    """Apply one tx as its own diff; on failure roll it back and return the error."""
    txn.begin_tx()
    try:
        apply_tx(txn, tx, proposer, index)
    except InvalidTx as exc:
        txn.rollback(txn.end_tx())
        return exc
    txn.end_tx()
    return None


def execute_block(block: BlockView, verdicts: VerdictSlice, txn: BlockTxn[D]) -> BlockReceipt:
    """The serial phase: apply ``block`` (already verified into ``verdicts``) to ``txn``.

    Raises
    ------
    InvalidBlock
        a rejected signature (``BAD_SIGNATURE``, nothing written), a tx failing
        an order-dependent check (its code; that tx rolled back), or a post-state
        root unequal to the header's (``BAD_STATE_ROOT``).  ``tx_index`` names
        the tx (-1 for the root).  The caller discards ``txn``.
    """
    if verdicts.block_id != block.block_id:
        raise LocalProtocolError("verdicts belong to another block")
    verdicts.check()
    proposer = account_id(block.pubkey)
    for i, tx in enumerate(block.txs()):
        error = _apply_one(txn, tx, proposer, i)
        if error is not None:
            raise InvalidBlock(f"tx {i}: {error}", code=error.code, tx_index=i) from error
    root = txn.root()
    if root != block.state_root:
        raise InvalidBlock(
            f"state root {root.hex()[:16]} != header {block.state_root.hex()[:16]}",
            code=WireCode.BAD_STATE_ROOT,
        )
    return BlockReceipt(block.block_id, block.height, root, block.tx_count)


def execute_candidates(
    txn: BlockTxn[D], txs: list[TxView], proposer: bytes
) -> tuple[list[TxView], list[TxFailure]]:
    """The proposer's serial phase: apply ``txs`` in order, leaving failing ones out.

    Returns (included txs, failures).  Each failing tx is rolled back with
    ``rollback(diff)``; the txn then holds exactly the included txs' writes.
    """
    included: list[TxView] = []
    failed: list[TxFailure] = []
    for i, tx in enumerate(txs):
        error = _apply_one(txn, tx, proposer, i)
        if error is None:
            included.append(tx)
            continue
        ahead = False
        if error.code is WireCode.BAD_NONCE:
            current = txn.get(b"acct/" + tx.sender)
            expected = _U64.unpack_from(current, 8)[0] if current is not None else 0
            ahead = tx.nonce > expected
        failed.append(TxFailure(i, tx.tx_id, error.code, ahead))
    return included, failed


class ChainBranch(BlockTxn[D], Protocol[D]):
    """A speculative branch the chain can commit or discard."""

    def meta_set(self, name: bytes, value: bytes) -> None:
        """Metadata written atomically with the commit."""
        ...

    def commit(self) -> bytes:
        """Commit (ConflictError if the head moved)."""
        ...

    def discard(self) -> None:
        """Drop the branch: O(1), idempotent."""
        ...


class ChainStore(Protocol):
    """What :class:`BlockExecutor` needs of :class:`~zapstack.zapdb.ZapDB`."""

    def snapshot(self) -> ChainBranch[Any]:
        """A speculative branch on the committed head."""
        ...

    def meta_get(self, name: bytes) -> bytes | None:
        """Committed metadata."""
        ...

    def root(self) -> bytes:
        """The committed state root."""
        ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """A block executed on a speculative branch, waiting for finality."""

    receipt: BlockReceipt
    """Its verified, root-checked receipt."""
    parent: bytes
    """Its parent block id (the finalized head it builds on)."""


class BlockExecutor:
    """A validator's chain view: receive candidates, finalize exactly one per height."""

    def __init__(
        self,
        db: ChainStore,
        verifier: Verifier,
        *,
        chain_id: int | None = None,
        genesis_id: bytes = bytes(32),
        max_candidates: int = 3,
    ) -> None:
        self._db = db
        self._verifier = verifier
        self._chain_id = chain_id
        self.max_candidates = max_candidates
        """Speculative width: candidates held for the next height at once."""
        height = db.meta_get(HEAD_HEIGHT_META)
        self.height: int = _U64.unpack(height)[0] if height is not None else 0
        """Finalized height (0 = genesis)."""
        self.head: bytes = db.meta_get(HEAD_ID_META) or genesis_id
        """Finalized block id (the genesis id at height 0)."""
        self._candidates: dict[bytes, tuple[Candidate, ChainBranch[Any]]] = {}

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """Candidates for height ``self.height + 1``, in arrival order."""
        return tuple(c for c, _ in self._candidates.values())

    @property
    def store(self) -> ChainStore:
        """The store the chain commits to (a proposer opens its build branches on it)."""
        return self._db

    def branch_of(self, block_id: bytes) -> ChainBranch[Any] | None:
        """The speculative branch candidate ``block_id`` was executed on (None: no such
        candidate).  Only to read or fork: committing or discarding it is :meth:`finalize`'s
        and :meth:`abandon`'s.  One dict read, so another thread may call it."""
        entry = self._candidates.get(block_id)
        return None if entry is None else entry[1]

    def _admit_height(self, block: BlockView) -> None:
        height = block.height
        if height <= self.height:
            raise InvalidBlock(
                f"late block: height {height} already finalized (head {self.head.hex()[:16]})"
            )
        if height != self.height + 1 or block.parent != self.head:
            raise InvalidBlock(f"block at height {height} does not extend the finalized head")

    def receive(self, data: bytes | memoryview | BlockView) -> Candidate:
        """Verify and execute a block for the next height on a speculative branch.

        Raises :class:`InvalidBlock` (late, not extending the head, bad
        signature, failing tx, bad root) or the ingress'
        :class:`~zapstack.errors.RemoteProtocolError`; nothing is kept then.
        """
        block = data if isinstance(data, BlockView) else parse_block(data, chain_id=self._chain_id)
        self._admit_height(block)
        block_id = block.block_id
        known = self._candidates.get(block_id)
        if known is not None:
            return known[0]
        if len(self._candidates) >= self.max_candidates:
            raise InvalidBlock("speculative width exhausted", code=WireCode.RATE_LIMITED)
        verdicts = self._verifier.verify(block)
        branch = self._db.snapshot()
        try:
            receipt = execute_block(block, verdicts, branch)
        except BaseException:
            branch.discard()
            raise
        candidate = Candidate(receipt, block.parent)
        self._candidates[block_id] = (candidate, branch)
        return candidate

    def finalize(self, block_id: bytes) -> BlockReceipt:
        """Commit the candidate ``block_id`` (its apply is already done); drop the rest."""
        entry = self._candidates.pop(block_id, None)
        if entry is None:
            raise LocalProtocolError(f"{block_id.hex()[:16]} is not a next-height candidate")
        candidate, branch = entry
        try:
            branch.meta_set(HEAD_HEIGHT_META, _U64.pack(candidate.receipt.height))
            branch.meta_set(HEAD_ID_META, block_id)
            branch.commit()
        finally:
            self.abandon()
        self.height = candidate.receipt.height
        self.head = block_id
        return candidate.receipt

    def abandon(self) -> None:
        """Discard every candidate of the next height (idempotent, O(candidates))."""
        entries, self._candidates = self._candidates, {}
        for _, branch in entries.values():
            branch.discard()
