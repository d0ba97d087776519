"""The node's tx pipeline: signatures batched off the loop, cheap checks first, pushback."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from zapstack.errors import Stage, WireCode
from zapstack.mempool.actions import VerifyRequest
from zapstack.mempool.answer import decode_answer
from zapstack.mempool.senders import MAX_AGE_S
from zapstack.node import txpipe
from zapstack.node.txpipe import (
    MAX_PENDING,
    MIN_PENDING,
    PENDING_S,
    RATE_WINDOW_S,
    AccountReader,
    TxPipeline,
    pending_bound,
)
from zapstack.transport.events import Reply
from zapstack.transport.handler import StreamInfo
from zapstack.transport.streams import STREAM_TYPES, StreamType
from zapstack.verify import Account, account_key, parallel
from zapstack.zap import DEFAULT_CHAIN_ID, Signer, SigScheme
from zapstack.zap.frames import build_transfer, parse_tx
from zapstack.zapdb import ZapDB

TO = bytes(32)
SPEC = STREAM_TYPES[StreamType.TX_SUBMIT]


def _user(i: int) -> Signer:
    return Signer(SigScheme.ED25519, hashlib.sha256(b"txpipe/%d" % i).digest())


def _acct(i: int) -> bytes:
    return hashlib.sha256(_user(i).public_key).digest()


def _tx(i: int, nonce: int, fee: int = 2) -> bytes:
    return build_transfer(_user(i), TO, 10, fee, nonce, DEFAULT_CHAIN_ID)


def _broken(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 1])  # the signature no longer verifies


class Harness:
    """A pipeline with a dict for state, recording what reaches each submitter."""

    def __init__(self, funded: int = 4, balance: int = 10_000) -> None:
        self.state = {_acct(i): (0, balance) for i in range(funded)}
        self.replies: dict[int, bytes] = {}
        self.stops: dict[int, int] = {}
        self.now = 0.0
        self.pipe = TxPipeline(
            lambda s: self.state.get(s, (0, 0)),
            DEFAULT_CHAIN_ID,
            stop_stream=lambda _p, sid, code: self.stops.__setitem__(sid, code),
            reply_stream=lambda _p, sid, record: self.replies.__setitem__(sid, record),
            clock=lambda: self.now,
        )

    def submit(self, sid: int, frame: bytes) -> None:
        h = self.pipe.txsvc.factory(StreamInfo(sid, StreamType.TX_SUBMIT, SPEC, False, b"p" * 32))
        out = [*h.on_data(frame), *h.on_end()]
        for a in out:  # answered at once (a cheap check refused it)
            assert isinstance(a, Reply)
            self.replies[sid] = a.data

    def codes(self) -> dict[int, WireCode]:
        got = {sid: decode_answer(r).code for sid, r in self.replies.items()}
        return got | {sid: WireCode(code) for sid, code in self.stops.items()}

    def settle(self) -> None:
        async def drain() -> None:
            while await self.pipe.step():
                pass

        asyncio.run(drain())


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.pipe.close()


def test_a_batch_with_one_bad_signature_rejects_only_that_one_and_answers_everyone(
    h: Harness,
) -> None:
    frames = [_tx(0, 0), _broken(_tx(1, 0)), _tx(2, 0), _tx(3, 0)]
    for k, f in enumerate(frames):
        h.submit(4 * k, f)
    assert h.replies == {} and h.stops == {}  # nothing verified on the loop yet
    assert len(h.pipe.txsvc.outbox) == 4  # four VerifyRequests, one batch
    h.settle()
    assert h.codes() == {
        0: WireCode.NO_ERROR,
        4: WireCode.BAD_SIGNATURE,
        8: WireCode.NO_ERROR,
        12: WireCode.NO_ERROR,
    }
    assert len(h.pipe.mempool) == 3
    assert h.pipe.rx.stats.rejects_by_stage() == {Stage.BODY: 1}
    # admitted submits are queued for gossip, and their signatures cached for block verify
    assert sorted(h.pipe.gossip_out) == sorted(frames[i] for i in (0, 2, 3))
    assert all(h.pipe.sigcache.verified(parse_tx(frames[i])) for i in (0, 2, 3))


def test_a_senders_txs_are_admitted_in_the_order_they_arrived(h: Harness) -> None:
    order: list[bytes] = []
    real = h.pipe.mempool.insert

    def insert(view):  # type: ignore[no-untyped-def]
        order.append(view.tx_id)
        return real(view)

    h.pipe.mempool.insert = insert  # type: ignore[method-assign]
    frames = [_tx(0, n) for n in range(5)]
    for n, f in enumerate(frames[:3]):
        h.submit(4 * n, f)
    h.pipe.take_gossip(frames[3] + frames[4])  # the same sender's next nonces, by gossip
    h.settle()
    assert order == [parse_tx(f).tx_id for f in frames]
    assert h.pipe.mempool.sender_nonces(_acct(0)) == [0, 1, 2, 3, 4]


def test_cheap_checks_refuse_a_flood_before_any_signature(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[bytes] = []
    real = parallel.verify_signature

    def counting(scheme, pubkey, digest, signature):  # type: ignore[no-untyped-def]
        checked.append(bytes(digest))
        return real(scheme, pubkey, digest, signature)

    monkeypatch.setattr(parallel, "verify_signature", counting)
    broke = [_tx(100 + i, 0, fee=9) for i in range(5)]  # unfunded senders
    for k, f in enumerate(broke):
        h.submit(4 * k, f)
    honest = [_tx(0, 0), _tx(0, 1)]
    assert h.pipe.take_gossip(b"".join(broke) + b"".join(honest)) == 2
    h.settle()
    assert len(checked) == 2  # only the funded sender's txs reached a signature check
    assert set(h.codes().values()) == {WireCode.INSUFFICIENT_BALANCE}
    assert len(h.codes()) == 5 and len(h.pipe.mempool) == 2


def test_gossip_skips_bad_txs_and_stops_at_a_bad_length(h: Harness) -> None:
    good = [_tx(0, n) for n in range(3)]
    truncated = good[2][:-1]  # its length field runs past the batch: the batch ends
    data = good[0] + _broken(good[1]) + good[2] + truncated + _tx(1, 0)
    assert h.pipe.take_gossip(data) == 3  # the bad signature is only found off the loop
    assert h.pipe.take_gossip(good[0]) == 0  # already queued: not twice
    h.settle()
    assert [parse_tx(t).tx_id in h.pipe.mempool for t in good] == [True, False, True]
    assert len(h.pipe.mempool) == 2 and h.pipe.gossip_out == []  # gossip is not re-gossiped


def test_gossip_beyond_the_queue_bound_is_dropped(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(txpipe, "MAX_QUEUED", 2)
    assert h.pipe.take_gossip(b"".join(_tx(i, 0) for i in range(4))) == 2
    assert h.pipe.dropped == 2


def test_pushback_answers_rate_limited_before_verifying_once_the_bound_is_reached(
    h: Harness,
) -> None:
    h.pipe.rx.max_pending = 2
    for k in range(2):
        h.submit(4 * k, _tx(k, 0))
    h.settle()
    h.submit(8, _tx(2, 0))  # the pool holds max_pending: answered at once, no verify
    assert not [a for a in h.pipe.txsvc.outbox if isinstance(a, VerifyRequest)]
    got = decode_answer(h.replies[8])
    assert got.code is WireCode.RATE_LIMITED and got.credit == 0
    assert decode_answer(h.replies[4]).credit == 0  # the last admitted one already said 0


@pytest.mark.parametrize(
    ("finals", "now", "rate"),
    [
        ([], 0.0, None),  # nothing final yet: the floor
        ([(0.0, 100)], 0.5, None),  # one height gives no rate
        # the oldest height's txs were gathered before the span: 2 x 1000 over 4 s
        ([(0.0, 1000), (2.0, 1000), (4.0, 1000)], 4.0, 2000 / 4.0),
        ([(0.0, 100), (0.5, 300)], 0.5, 300 / 1.0),  # a span under a second counts as one
        ([(0.0, 9000), (20.0, 2000)], 20.0, None),  # older than the window: ignored
        ([(t, 2000) for t in range(11)], 10.0, 20000 / RATE_WINDOW_S),
    ],
)
def test_pending_bound_is_seconds_of_finalized_throughput_clamped(
    finals: list[tuple[float, int]], now: float, rate: float | None
) -> None:
    want = MIN_PENDING if rate is None else int(rate * PENDING_S)
    want = max(MIN_PENDING, min(MAX_PENDING, want))
    assert pending_bound(finals, now) == want


def test_the_pool_ages_admitted_txs_on_the_pipelines_clock(h: Harness) -> None:
    h.submit(1, _tx(0, 0, fee=2))
    h.settle()
    h.now = 0.5
    h.submit(2, _tx(1, 0, fee=9))
    h.settle()
    assert [v.fee for v in h.pipe.mempool.select(10)] == [9, 2]  # fee priority
    h.now = 0.5 + MAX_AGE_S  # the fee-2 tx has now waited longer than the bound
    assert [v.fee for v in h.pipe.mempool.select(10)] == [2, 9]


def test_finalized_heights_move_the_receivers_bound(h: Harness) -> None:
    assert h.pipe.rx.max_pending == MIN_PENDING
    for _ in range(40):
        h.pipe.finalized(2000)  # all at once on the clock: a huge rate
    assert h.pipe.rx.max_pending == MAX_PENDING


def _commit(db: ZapDB, sender: bytes, acct: Account) -> None:
    txn = db.begin()
    try:
        txn.set(account_key(sender), acct.encode())
        txn.commit()
    finally:
        txn.discard()


def test_account_reader_reads_once_per_sender_per_committed_version(tmp_path: Path) -> None:
    db = ZapDB.open(tmp_path / "db")
    try:
        a, b = _acct(0), _acct(1)
        _commit(db, a, Account(balance=70, nonce=3))
        reader = AccountReader(db)
        assert reader(a) == (3, 70) and reader(a) == (3, 70)
        assert reader(b) == (0, 0)  # an absent account: the fresh one
        assert reader.reads == 2  # a's second lookup came from the memo
        _commit(db, a, Account(balance=40, nonce=4))  # a commit moves the version
        assert reader(a) == (4, 40) and reader.reads == 3  # never a stale answer
        full = AccountReader(db, cap=1)
        full(a), full(b), full(b)
        assert full.reads == 3  # past the cap nothing more is memoised
    finally:
        db.close()


def test_the_run_task_wakes_on_new_work_and_batches_it(h: Harness) -> None:
    batches: list[int] = []
    real = h.pipe.verify_batch

    async def recording(batch):  # type: ignore[no-untyped-def]
        batches.append(len(batch))
        return await real(batch)

    h.pipe.verify_batch = recording  # type: ignore[method-assign]

    async def scenario() -> None:
        task = asyncio.create_task(h.pipe.run())
        for k in range(3):
            h.submit(4 * k, _tx(k, 0))  # three submits in one go: one wake-up
        while len(h.replies) < 3:
            await asyncio.sleep(0.005)
        h.pipe.take_gossip(_tx(3, 0))  # later work wakes it again
        while len(h.pipe.mempool) < 4:
            await asyncio.sleep(0.005)
        task.cancel()

    asyncio.run(scenario())
    assert batches == [3, 1]
    assert set(h.codes().values()) == {WireCode.NO_ERROR}
