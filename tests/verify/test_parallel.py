"""The parallel phase on threads: verdict slices, the failure row, verdict-drop unwind."""

from __future__ import annotations

import hashlib
from concurrent.futures import Future

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.errors import InvalidBlock, LocalProtocolError, WireCode
from zapstack.testing.unwind import check_unwind_contract
from zapstack.verify.parallel import (
    MIN_VIEWS_PER_TASK,
    PendingVerify,
    ThreadVerifier,
    TxVerdict,
    split_ranges,
    verify_sequential,
    verify_views,
)
from zapstack.verify.sigcache import VerifiedCache
from zapstack.zap import (
    BlockView,
    Signer,
    SigScheme,
    build_block,
    build_transfer,
    parse_block,
    parse_tx,
)


def _signer(i: int, scheme: SigScheme = SigScheme.ED25519) -> Signer:
    return Signer(scheme, hashlib.sha256(b"par/%d/%d" % (scheme, i)).digest())


PROPOSER = _signer(99)


def _tamper(tx: bytes) -> bytes:
    """Flip one bit of the tx's signature (structure stays valid)."""
    return tx[:-1] + bytes([tx[-1] ^ 0x01])


def _block(txs: list[bytes]) -> BlockView:
    raw = build_block(
        PROPOSER, height=1, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=txs
    )
    return parse_block(raw)


def _txs(n: int, scheme: SigScheme = SigScheme.ED25519) -> list[bytes]:
    keys = [_signer(i, scheme) for i in range(4)]
    return [build_transfer(keys[i % 4], bytes(32), i, 1, i // 4) for i in range(n)]


@pytest.fixture(scope="module")
def tv() -> ThreadVerifier:
    return ThreadVerifier(2)


def test_parallel_equals_sequential_mixed_schemes(tv: ThreadVerifier) -> None:
    txs = _txs(20) + _txs(3, SigScheme.MLDSA65)
    block = _block(txs)
    got = tv.verify(block)
    assert got == verify_sequential(block)
    assert got.ok and got.rejected == () and len(got.verdicts) == 23
    assert [v.index for v in got.verdicts] == list(range(23))
    assert got.verdicts[5].tx_id == block.tx(5).tx_id
    got.check()


@pytest.mark.parametrize("bad", [[0], [7], [3, 11], [19]])
def test_sig_verify_fails_in_parallel_batch(tv: ThreadVerifier, bad: list[int]) -> None:
    """Failure row: one goroutine returns invalid -> the slice names the tx; block rejected."""
    txs = _txs(20)
    for i in bad:
        txs[i] = _tamper(txs[i])
    block = _block(txs)  # the block frame itself (and its proposer signature) is valid
    verdicts = tv.verify(block)
    assert verdicts == verify_sequential(block)
    assert [v.index for v in verdicts.rejected] == bad
    assert all(v.code is WireCode.BAD_SIGNATURE for v in verdicts.rejected)
    assert not verdicts.ok
    with pytest.raises(InvalidBlock) as err:
        verdicts.check()
    assert err.value.tx_index == bad[0] and err.value.code is WireCode.BAD_SIGNATURE


def test_empty_block(tv: ThreadVerifier) -> None:
    block = _block([])
    assert tv.verify(block).verdicts == ()


@given(st.integers(0, 3000), st.integers(1, 64))
def test_split_ranges_cover_exactly(n: int, parts: int) -> None:
    ranges = split_ranges(n, parts)
    assert len(ranges) <= parts
    flat = [i for lo, hi in ranges for i in range(lo, hi)]
    assert flat == list(range(n))
    if ranges:
        sizes = [hi - lo for lo, hi in ranges]
        assert max(sizes) - min(sizes) <= 1


def _blocked_pending() -> tuple[PendingVerify, Future[list[TxVerdict]]]:
    """A verification whose only range never finishes on its own."""
    fut: Future[list[TxVerdict]] = Future()
    fut.set_running_or_notify_cancel()  # running: cancel() cannot stop it
    return PendingVerify(b"\x00" * 32, 1, [fut]), fut


def _observe(p: PendingVerify) -> tuple[bool, str]:
    try:
        p.result()
    except LocalProtocolError:
        return p.dropped, "dropped"
    return p.dropped, "joined"


def test_verdict_drop_unwind_contract(tv: ThreadVerifier) -> None:
    block = _block(_txs(8))

    def pending() -> tuple[PendingVerify, object]:
        return tv.submit(block), (True, "dropped")

    def joined() -> tuple[PendingVerify, object]:
        p = tv.submit(block)
        p.result()
        return p, (True, "dropped")

    def running_forever() -> tuple[PendingVerify, object]:
        # drop must not wait for a running range (O(0)): this one never ends
        return _blocked_pending()[0], (True, "dropped")

    def dropped() -> tuple[PendingVerify, object]:
        p = tv.submit(block)
        p.drop()
        return p, (True, "dropped")

    assert (
        check_unwind_contract(
            {"pending": pending, "joined": joined, "running": running_forever, "dropped": dropped},
            unwind=lambda p: p.drop(),
            observe=_observe,
        )
        == 4
    )


def test_drop_cancels_queued_ranges() -> None:
    p, running = _blocked_pending()
    queued: Future[list[TxVerdict]] = Future()
    p2 = PendingVerify(b"\x00" * 32, 2, [running, queued])
    p2.drop()
    assert queued.cancelled() and not running.cancelled()
    del p


def test_submit_views_gives_one_verdict_per_view_in_order_and_fills_the_cache() -> None:
    raws = _txs(2 * MIN_VIEWS_PER_TASK + 3)
    bad = {1, 40, len(raws) - 1}
    views = [
        parse_tx(_tamper(r) if i in bad else r, verify_signatures=False) for i, r in enumerate(raws)
    ]
    want = [i not in bad for i in range(len(raws))]  # the reference: which were tampered
    cache = VerifiedCache()
    with ThreadVerifier(2, cache=cache) as pool:
        futures = pool.submit_views(views)
        assert len(futures) == 2  # a batch this size is cut in one range per worker
        got = [ok for f in futures for ok in f.result()]
        assert got == want
        assert len(cache) == len(raws) - len(bad)  # only successes are recorded
        assert len(pool.submit_views(views[:5])) == 1  # a small batch is one task
        assert pool.submit_views([]) == []
    assert verify_views(views) == want  # no cache: the same verdicts


def test_verify_views_trusts_a_cached_pair_and_never_caches_a_failure() -> None:
    good, broken = _txs(2)
    g, b = parse_tx(good), parse_tx(_tamper(broken), verify_signatures=False)
    cache = VerifiedCache()
    assert verify_views([g, b], cache) == [True, False]
    assert (cache.hits, len(cache)) == (0, 1)
    assert verify_views([g, b], cache) == [True, False]
    assert cache.hits == 1 and len(cache) == 1  # g from the cache, b checked again
