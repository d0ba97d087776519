"""ChainIndex: block ids and tx inclusions from real block frames, bounded rejects, rebuild."""

from __future__ import annotations

import gc
import hashlib

from zapstack.errors import WireCode
from zapstack.node.txindex import ChainIndex, Inclusion, Rejection
from zapstack.zap import Signer, SigScheme, build_transfer
from zapstack.zap.frames import build_block, parse_tx

PROPOSER = Signer(SigScheme.ED25519, bytes(32))
USER = Signer(SigScheme.ED25519, b"\x01" * 32)


def _chain(n: int, per_block: int) -> tuple[list[bytes], list[list[bytes]]]:
    """``n`` linked blocks of ``per_block`` transfers each; (blocks, tx ids per block)."""
    blocks, ids, parent, nonce = [], [], bytes(32), 0
    for height in range(1, n + 1):
        txs = []
        for _ in range(per_block):
            txs.append(build_transfer(USER, b"\x02" * 32, 1, 1, nonce))
            nonce += 1
        block = build_block(PROPOSER, height=height, parent=parent, timestamp_ms=height,
                            state_root=bytes(32), txs=txs)  # fmt: skip
        blocks.append(block)
        ids.append([parse_tx(t).tx_id for t in txs])
        parent = hashlib.sha256(block).digest()
    return blocks, ids


def test_blocks_and_txs_are_found_where_they_were_included() -> None:
    blocks, ids = _chain(3, 2)
    index = ChainIndex()
    seen: list[int] = []
    stop = index.listen(lambda h, _b, _c: seen.append(h))
    for height, block in enumerate(blocks, 1):
        index.finalized(height, block, b"")
        index.finalized(height, block, b"")  # idempotent for the index
    for height, block in enumerate(blocks, 1):
        block_id = hashlib.sha256(block).digest()  # the reference: sha256 of the frame
        assert index.height_of(block_id) == height
        for i, tx_id in enumerate(ids[height - 1]):
            assert index.inclusion(tx_id) == Inclusion(height, i, block_id)
    assert index.inclusion(b"\x00" * 32) is None and index.height_of(b"\x00" * 32) is None
    assert seen == [1, 1, 2, 2, 3, 3]
    stop()
    stop()  # idempotent
    index.finalized(4, blocks[0], b"")  # a wrong height is logged, not indexed
    assert seen == [1, 1, 2, 2, 3, 3, ] and index.listeners == 0  # fmt: skip


def test_rebuild_reads_the_held_blocks_once() -> None:
    blocks, ids = _chain(4, 1)
    held = {h: b for h, b in enumerate(blocks, 1) if h != 2}  # height 2 is missing
    held[3] = b"garbage"

    class Store:
        def block(self, height: int) -> bytes | None:
            return held.get(height)

    index = ChainIndex()
    assert index.rebuild(Store(), 4) == 2 and index.rebuilt
    assert index.rebuild(Store(), 4) == 0  # once per index
    assert index.inclusion(ids[0][0]) is not None and index.inclusion(ids[3][0]) is not None
    assert index.inclusion(ids[1][0]) is None and index.inclusion(ids[2][0]) is None


def test_rejections_are_a_bounded_fifo() -> None:
    index = ChainIndex(max_rejects=3)
    for i in range(5):
        index.rejected(bytes([i]) * 32, WireCode.BAD_NONCE, f"r{i}")
    index.rejected(b"", WireCode.BAD_MAGIC)  # no id: nothing to remember
    assert [index.rejection(bytes([i]) * 32) for i in range(2)] == [None, None]
    assert index.rejection(b"\x04" * 32) == Rejection(WireCode.BAD_NONCE, "r4")
    index.rejected(b"\x02" * 32, WireCode.DUPLICATE)  # refreshed: now the newest
    index.rejected(b"\x05" * 32, WireCode.DUPLICATE)
    assert index.rejection(b"\x03" * 32) is None
    assert index.rejection(b"\x02" * 32) == Rejection(WireCode.DUPLICATE, "")


def test_indexed_txs_leave_nothing_for_the_garbage_collector() -> None:
    """One entry per tx ever finalized: none may be an object the collector tracks
    (a full collection scans every tracked object; on a busy chain that was a pause)."""
    blocks, ids = _chain(20, 100)
    index = ChainIndex()
    for height, block in enumerate(blocks[:10], 1):  # the parser's memo fills up (8 blocks)
        index.finalized(height, block, b"")
    gc.collect()
    before = len(gc.get_objects())
    for height, block in enumerate(blocks[10:], 11):  # 1,000 more txs indexed
        index.finalized(height, block, b"")
    gc.collect()
    assert len(gc.get_objects()) - before < 50
    block_id = hashlib.sha256(blocks[19]).digest()
    assert index.inclusion(ids[19][99]) == Inclusion(20, 99, block_id)
    assert index.inclusion(ids[0][0]) == Inclusion(1, 0, hashlib.sha256(blocks[0]).digest())
