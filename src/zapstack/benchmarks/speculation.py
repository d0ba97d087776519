"""Row "Speculative execution": N x codec round-trip per branch vs N x pointer-share.

``width`` competing candidate blocks for the same height (real signed ZAP
block frames of ``n`` Ed25519 transfers each, with true post-state roots)
are executed speculatively on ZapDB branches over one shared head snapshot
with :func:`zapstack.zapdb.speculate.speculate`, then abandoned (so every
repetition starts from the same head).  Signatures are verified once per
block beforehand (the verify pipeline's job, identical for both paths).
Median of ``repeat`` runs each, the two paths taking turns, measured in this run:

* **pipelined (pointer-share)**: each branch gets the validated
  :class:`~zapstack.zap.BlockView` -- zero-copy views into the one immutable
  block buffer -- and runs the real serial phase,
  :func:`zapstack.verify.executor.execute_block` (per-tx ``begin_tx`` /
  ``end_tx``, state transition, post-state root check);
* **serial (codec round-trip per branch)**: the block is held in its codec
  form (msgspec msgpack, every field of every tx); each branch decodes it into
  owned objects (every field copied), runs the same state transition
  (:func:`zapstack.verify.state.apply_tx`, same per-tx diff bracket, same root
  check) on those objects, and re-marshals the block for its overlay -- what a
  marshal-per-branch design does.

``extras`` also gives the hand-off cost alone (codec decode + encode of one
block vs building the zero-copy tx views), where the codec's per-branch price
shows without the execution that both paths share.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec

from zapstack.benchmarks.result import RowResult, interleaved, median_time, time_ratio
from zapstack.errors import InvalidBlock, InvalidTx
from zapstack.verify import (
    Account,
    VerdictSlice,
    account_id,
    account_key,
    apply_genesis,
    apply_tx,
    execute_block,
    verify_sequential,
)
from zapstack.verify.executor import execute_candidates
from zapstack.zap import (
    BlockView,
    Signer,
    SigScheme,
    build_block,
    build_transfer,
    parse_block,
    parse_tx,
)
from zapstack.zap.views import TxView
from zapstack.zapdb import Txn, ZapDB
from zapstack.zapdb.speculate import speculate

__all__ = ["CodecBlock", "CodecTx", "Fixture", "codec_execute", "pointer_execute", "run"]

B = TypeVar("B")
SENDERS = 100
FILLERS = 10_000
"""Unrelated accounts in the head state, so the state tree has realistic depth."""


class CodecTx(msgspec.Struct, frozen=True):
    """A transfer as a codec hands it out: an owned object, every field copied."""

    kind: int
    scheme: int
    chain_id: int
    pubkey: bytes
    recipient: bytes
    amount: int
    fee: int
    nonce: int
    signature: bytes

    @property
    def sender(self) -> bytes:
        """The sender's account id (what :func:`apply_tx` reads)."""
        return hashlib.sha256(self.pubkey).digest()

    @property
    def data(self) -> bytes:
        """Transfers carry no call data."""
        return b""


class CodecBlock(msgspec.Struct, frozen=True):
    """A block in the codec baseline's form."""

    height: int
    parent: bytes
    timestamp_ms: int
    state_root: bytes
    tx_root: bytes
    chunk_root: bytes
    proposer: bytes
    signature: bytes
    txs: list[CodecTx]


_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(CodecBlock)


def to_codec(block: BlockView) -> bytes:
    """Marshal a block into the codec baseline's wire form (done once, untimed)."""
    txs = [
        CodecTx(t.kind, t.scheme, t.chain_id, bytes(t.pubkey), t.recipient, t.amount, t.fee,
                t.nonce, bytes(t.signature))
        for t in block.txs()
    ]  # fmt: skip
    return _ENC.encode(
        CodecBlock(block.height, block.parent, block.timestamp_ms, block.state_root,
                   block.tx_root, block.chunk_root, bytes(block.pubkey), bytes(block.signature),
                   txs)
    )  # fmt: skip


def codec_execute(branch: Txn, encoded: bytes) -> bytes:
    """Codec path for one branch: decode, execute from the copies, re-marshal."""
    blk = _DEC.decode(encoded)
    proposer = account_id(blk.proposer)
    for i, tx in enumerate(blk.txs):
        branch.begin_tx()
        try:
            apply_tx(branch, cast(TxView, tx), proposer, i)
        except InvalidTx as exc:
            branch.rollback(branch.end_tx())
            raise InvalidBlock(f"tx {i}: {exc}", code=exc.code, tx_index=i) from exc
        branch.end_tx()
    if branch.root() != blk.state_root:
        raise InvalidBlock("codec path: state root mismatch")
    return _ENC.encode(blk)


def pointer_execute(branch: Txn, item: tuple[BlockView, VerdictSlice]) -> bytes:
    """Pointer-share path for one branch: the real serial phase on the shared view."""
    block, verdicts = item
    return execute_block(block, verdicts, branch).state_root


class Fixture:
    """A head state and ``width`` valid competing blocks for height 1."""

    def __init__(self, path: Path, n: int, width: int) -> None:
        users = [
            Signer(SigScheme.ED25519, hashlib.sha256(b"perf-spec/%d" % i).digest())
            for i in range(SENDERS)
        ]
        self.db = ZapDB.open(path, map_size=1 << 30, sync=False)
        txn = self.db.begin()
        apply_genesis(txn, {account_id(u.public_key): 10**12 for u in users})
        for i in range(FILLERS):
            filler = account_key(hashlib.sha256(b"filler %d" % i).digest())
            txn.set(filler, Account(1 + i, 0).encode())
        txn.commit()
        self.blocks: list[BlockView] = []
        for c in range(width):
            proposer = Signer(SigScheme.ED25519, hashlib.sha256(b"perf-prop/%d" % c).digest())
            raw_txs = [
                build_transfer(
                    users[i % SENDERS],
                    account_id(users[(i + 1 + c) % SENDERS].public_key),
                    1 + c + i % 7,
                    1,
                    i // SENDERS,
                )
                for i in range(n)
            ]
            views = [parse_tx(t) for t in raw_txs]
            branch = self.db.snapshot()
            included, failed = execute_candidates(branch, views, account_id(proposer.public_key))
            root = branch.root()
            branch.discard()
            if failed:
                raise AssertionError(f"fixture tx failed: {failed[0]}")
            raw = build_block(
                proposer, height=1, parent=bytes(32), timestamp_ms=1000 + c, state_root=root,
                txs=included,
            )  # fmt: skip
            self.blocks.append(parse_block(raw))
        self.verdicts = [verify_sequential(b) for b in self.blocks]
        self.encoded = [to_codec(b) for b in self.blocks]

    def close(self) -> None:
        """Close the store."""
        self.db.close()


def _speculate_all(db: ZapDB, candidates: list[tuple[int, B]], fn: Callable[[Txn, B], Any]) -> None:
    """Apply every candidate on its own branch; wait for all; drop them all."""
    spec = speculate(db, candidates, fn, max_width=len(candidates))
    try:
        while not all(spec.ready(i) for i in range(len(candidates))):
            time.sleep(0.0002)
    finally:
        spec.abandon()


def run(n: int = 1000, *, width: int = 3, repeat: int = 7) -> RowResult:
    """Measure ``width`` speculative branches of ``n``-tx blocks, both ways."""
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="perf-spec-"))
    try:
        fx = Fixture(tmp / "db", n, width)
        try:
            db = fx.db
            # correctness first: both paths reach every block's header root
            for block, verdicts, encoded in zip(fx.blocks, fx.verdicts, fx.encoded, strict=True):
                ptr, cod = db.snapshot(), db.snapshot()
                pointer_execute(ptr, (block, verdicts))
                codec_execute(cod, encoded)
                if not ptr.root() == cod.root() == block.state_root:
                    raise AssertionError("bench paths disagree with the block's root")
                ptr.discard()
                cod.discard()
            shared = [(i, (b, fx.verdicts[i])) for i, b in enumerate(fx.blocks)]
            codec = [(i, e) for i, e in enumerate(fx.encoded)]
            secs = interleaved(
                {
                    "pointer": lambda: _speculate_all(db, shared, pointer_execute),
                    "codec": lambda: _speculate_all(db, codec, codec_execute),
                },
                repeat,
            )
            ptr_s, codec_s = secs["pointer"], secs["codec"]
            block, encoded = fx.blocks[0], fx.encoded[0]
            hand_codec = median_time(lambda: _ENC.encode(_DEC.decode(encoded)), 20)
            hand_ptr = median_time(block.txs, 20)
            one_apply = median_time(lambda: _one(db, shared[0][1]), repeat)
        finally:
            fx.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return RowResult(
        key="speculation",
        op=f"Speculative execution ({width} branches x {n:,} txs)",
        serial_label="codec round-trip per branch",
        pipelined_label="pointer-share of the block buffer",
        serial=codec_s * 1e3,
        pipelined=ptr_s * 1e3,
        unit="ms",
        higher_is_better=False,
        ratio=time_ratio(ptr_s, codec_s),
        spec_win="usable vs prohibitive",
        notes="real ZAP transfer blocks, real executor; both paths share the state transition",
        extras={
            "one_branch_alone_ms": one_apply * 1e3,
            "handoff_codec_per_branch_ms": hand_codec * 1e3,
            "handoff_pointer_per_branch_ms": hand_ptr * 1e3,
            "handoff_ratio": hand_codec / hand_ptr,
            "codec_handoff_share_of_codec_branch_pct": 100 * hand_codec * width / codec_s,
        },
        seconds=time.perf_counter() - start,
    )


def _one(db: ZapDB, item: tuple[BlockView, VerdictSlice]) -> None:
    br = db.snapshot()
    try:
        pointer_execute(br, item)
    finally:
        br.discard()
