"""ZapDB: persistent MVCC state with atomic unwind, a state root and speculation.

LMDB is the durable base (one writer, many O(1) read snapshots).  Read-write
txns and speculative branches are in-memory overlays over one shared snapshot;
``commit()`` replays the overlay in one LMDB write txn, ``discard()`` drops it
in O(1).  The state root is a compact sparse Merkle tree over sha256(key)
(``docs/formats/state-root.md``), updated incrementally and able to serve
membership / non-membership proofs and verifiable state chunks.

Public API
----------
``ZapDB.open(path, *, map_size, fault_injector, write_order_seed, sync)``;
``db.begin() -> Txn``; ``db.snapshot() -> Branch``; ``db.read() -> ReadView``;
``db.root()``, ``db.version``, ``db.meta_get(name)``, ``db.close()``.
``Txn``/``Branch``: ``get set delete iterate begin_tx end_tx tx abort_tx
rollback root meta_set commit discard``.  ``bulk_load(db, items)`` fills an
empty store in one commit; ``ChunkLoader(txn, root, depth)`` loads verified state
chunks (state sync) keeping the subtrees it hashed (:mod:`.bulk`).
``speculate(db, candidates, apply_fn, max_width=3) -> Speculation`` with
``decide(winner_id)`` / ``abandon()``.

Errors (each says when it occurs)
---------------------------------
* :class:`~zapstack.errors.ConflictError` -- ``commit()`` of a txn or branch
  whose snapshot is no longer the head (another txn/branch committed first).
  The txn is discarded; nothing was written.  Never a silent merge.
* :class:`~zapstack.errors.FatalStoreError` -- LMDB or the disk failed during
  ``open`` or ``commit`` (ENOSPC, EIO, map full, corrupt tree/root).  The txn
  is discarded, the last committed state stays intact and readable, and the
  store refuses further ``begin``/``snapshot``/``commit`` (``db.halted``) --
  the node halts at its last committed block and restarts.
* :class:`~zapstack.errors.StoreError` -- use of a closed thing: a committed
  or discarded txn/branch (except ``discard``/``rollback``/``abort_tx``, which
  are no-ops), a closed read view, a closed database; ``iterate`` given both a
  prefix and a range.
* :class:`~zapstack.errors.LocalProtocolError` -- caller misuse: a key outside
  1..511 bytes, ``begin_tx`` while a tx is open, ``end_tx`` without one,
  ``rollback`` of a diff from another txn, a chunk index out of range,
  ``decide`` twice with different winners or an unknown candidate id.

Unwind primitives (``Txn.discard``, ``Branch.discard``, ``Txn.rollback``,
``Txn.abort_tx``, ``ReadView.close``, ``Speculation.abandon``) are idempotent
and never raise in any state; ``tests/zapdb`` runs each through
:func:`zapstack.testing.unwind.check_unwind_contract`.
"""

from zapstack.zapdb.bulk import ChunkLoader, bulk_load
from zapstack.zapdb.proofs import Proof, StateChunk, verify_chunk, verify_proof
from zapstack.zapdb.smt import EMPTY, reference_root
from zapstack.zapdb.store import DEFAULT_MAP_SIZE, FailAt, FaultInjector, ZapDB
from zapstack.zapdb.txn import MAX_KEY_LEN, Branch, Diff, Txn, TxScope
from zapstack.zapdb.view import ReadView

__all__ = [
    "DEFAULT_MAP_SIZE",
    "EMPTY",
    "MAX_KEY_LEN",
    "Branch",
    "ChunkLoader",
    "Diff",
    "FailAt",
    "FaultInjector",
    "Proof",
    "ReadView",
    "StateChunk",
    "TxScope",
    "Txn",
    "ZapDB",
    "bulk_load",
    "reference_root",
    "verify_chunk",
    "verify_proof",
]
