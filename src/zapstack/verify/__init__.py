"""The verify pipeline (LP-0202 §4) and the block executor.

Parallel phase (:mod:`~zapstack.verify.parallel`, :mod:`~zapstack.verify.procpool`):
every tx signature of a block verified concurrently over the one immutable
block buffer, joined into a :class:`VerdictSlice`.  Serial phase and executor
(:mod:`~zapstack.verify.executor`): nonces and balances in block order against
a ZapDB txn/branch with per-tx ``rollback(diff)``; a block failing any check
is rejected as a whole (:class:`~zapstack.errors.InvalidBlock`) and never
committed.  State model: :mod:`~zapstack.verify.state`
(``docs/formats/state.md``).

Unwind primitives: :meth:`PendingVerify.drop` (verdict drop, O(0)), the
store's ``rollback(diff)`` per tx, :meth:`BlockExecutor.abandon`.  All are
idempotent.
"""

from zapstack.verify.executor import (
    BlockExecutor,
    BlockReceipt,
    BlockTxn,
    Candidate,
    ChainStore,
    TxFailure,
    execute_block,
    execute_candidates,
)
from zapstack.verify.parallel import (
    PendingVerify,
    ThreadVerifier,
    TxVerdict,
    VerdictSlice,
    Verifier,
    verify_sequential,
)
from zapstack.verify.procpool import ProcessVerifier
from zapstack.verify.sigcache import VerifiedCache
from zapstack.verify.state import (
    Account,
    account_id,
    account_key,
    apply_genesis,
    apply_tx,
    call_key,
    genesis_state,
    read_account,
)

__all__ = [
    "Account",
    "BlockExecutor",
    "BlockReceipt",
    "BlockTxn",
    "Candidate",
    "ChainStore",
    "PendingVerify",
    "ProcessVerifier",
    "ThreadVerifier",
    "TxFailure",
    "TxVerdict",
    "VerdictSlice",
    "VerifiedCache",
    "Verifier",
    "account_id",
    "account_key",
    "apply_genesis",
    "apply_tx",
    "call_key",
    "execute_block",
    "execute_candidates",
    "genesis_state",
    "read_account",
    "verify_sequential",
]
