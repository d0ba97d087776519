"""The parallel phase on a pre-warmed process pool over shared memory."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from multiprocessing.shared_memory import SharedMemory

import pytest

from zapstack.errors import LocalProtocolError, WireCode
from zapstack.testing.unwind import check_unwind_contract
from zapstack.verify.parallel import PendingVerify, verify_sequential
from zapstack.verify.procpool import ProcessVerifier, tx_view_at
from zapstack.zap import (
    BlockView,
    Signer,
    SigScheme,
    build_block,
    build_call,
    build_transfer,
    parse_block,
)


def _signer(i: int, scheme: SigScheme = SigScheme.ED25519) -> Signer:
    return Signer(scheme, hashlib.sha256(b"proc/%d/%d" % (scheme, i)).digest())


def _block(n: int, bad: tuple[int, ...] = ()) -> BlockView:
    keys = [_signer(i) for i in range(3)] + [_signer(0, SigScheme.MLDSA65)]
    txs = []
    for i in range(n):
        k = keys[i % 4]
        tx = (
            build_call(k, bytes(32), b"d" * i, 1, i // 4)
            if i % 3 == 0
            else build_transfer(k, bytes(32), i, 1, i // 4)
        )
        if i in bad:
            tx = tx[:-1] + bytes([tx[-1] ^ 0x80])
        txs.append(tx)
    raw = build_block(
        _signer(50), height=1, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=txs
    )
    return parse_block(raw)


@pytest.fixture(scope="module")
def pv() -> Iterator[ProcessVerifier]:
    v = ProcessVerifier(2, ranges_per_worker=2)
    yield v
    v.close()


def test_tx_view_at_matches_block_views() -> None:
    block = _block(9)
    for i, (start, end) in enumerate(block.tx_spans()):
        a, b = tx_view_at(block.buffer, start, end), block.tx(i)
        assert (a.tx_id, bytes(a.pubkey), bytes(a.signature), a.nonce, bytes(a.data)) == (
            b.tx_id,
            bytes(b.pubkey),
            bytes(b.signature),
            b.nonce,
            bytes(b.data),
        )


def test_process_pool_equals_sequential(pv: ProcessVerifier) -> None:
    block = _block(17, bad=(4, 12))
    got = pv.verify(block)
    assert got == verify_sequential(block)
    assert [v.index for v in got.rejected] == [4, 12]
    assert got.rejected[0].code is WireCode.BAD_SIGNATURE


def test_empty_block(pv: ProcessVerifier) -> None:
    assert pv.verify(_block(0)).verdicts == ()


def _segment_exists(p: PendingVerify) -> bool:
    name = p.resource
    try:
        seg = SharedMemory(name=name)
    except FileNotFoundError:
        return False
    seg.close()
    return True


def test_drop_unlinks_the_segment(pv: ProcessVerifier) -> None:
    block = _block(8)

    def observe(p: PendingVerify) -> tuple[bool, bool]:
        try:
            p.result()
        except LocalProtocolError:
            return p.dropped, _segment_exists(p)
        raise AssertionError("a dropped verification joined")

    def pending() -> tuple[PendingVerify, object]:
        return pv.submit(block), (True, False)

    def joined() -> tuple[PendingVerify, object]:
        p = pv.submit(block)
        p.result()
        return p, (True, False)

    check_unwind_contract({"pending": pending, "joined": joined}, lambda p: p.drop(), observe)
