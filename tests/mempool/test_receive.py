"""The tx receive pipeline: stages 1-5 per stream, isolation, backpressure, timeouts.

An in-memory driver (``Driver``) plays the transport: it holds each stream's
remaining bytes, delivers them in chunks (round-robin across streams), honours
``WaitForCredit``/``Resume`` and records every action.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.errors import LocalProtocolError, Stage, WireCode
from zapstack.mempool import (
    Action,
    AdmissionController,
    Mempool,
    RejectStream,
    Resume,
    TxAdmitted,
    TxReceiver,
    TxRejected,
    VerifyRequest,
    WaitForCredit,
    verify_batch,
)
from zapstack.mempool.reputation import DEFAULT_PENALTY, PENALTY
from zapstack.zap import DEFAULT_CHAIN_ID, MAX_TX_SIZE, parse_tx

from .conftest import tx_bytes

Key = tuple[bytes, int]


class Driver:
    """Delivers each stream's bytes in ``chunk``-sized pieces, round-robin, then FIN."""

    def __init__(self, rx: TxReceiver, chunk: int = 1) -> None:
        self.rx = rx
        self.chunk = chunk
        self.pending: dict[Key, bytes] = {}
        self.paused: set[Key] = set()
        self.done: set[Key] = set()
        self.actions: list[Action] = []

    def open(self, peer: bytes, sid: int, data: bytes) -> None:
        self.pending[(peer, sid)] = data
        self.apply(self.rx.stream_opened(peer, sid))

    def apply(self, actions: Sequence[Action]) -> None:
        for a in actions:
            self.actions.append(a)
            key = (a.peer, a.stream_id)
            if isinstance(a, WaitForCredit):
                self.paused.add(key)
            elif isinstance(a, Resume):
                self.paused.discard(key)
            elif isinstance(a, VerifyRequest):
                (ok,) = verify_batch([a.view])
                self.apply(self.rx.verified(a.peer, a.stream_id, ok))
            elif isinstance(a, RejectStream | TxAdmitted | TxRejected):
                self.done.add(key)

    def step(self) -> bool:
        moved = False
        for key in list(self.pending):
            if key in self.paused or key in self.done:
                continue
            data = self.pending[key]
            if data:
                piece, self.pending[key] = data[: self.chunk], data[self.chunk :]
                self.apply(self.rx.data_received(*key, piece))
            else:
                del self.pending[key]
                self.apply(self.rx.stream_ended(*key))
            moved = True
        return moved

    def run(self) -> None:
        while self.step():
            pass

    def of(self, peer: bytes, sid: int) -> Action:
        (a,) = [
            a
            for a in self.actions
            if (a.peer, a.stream_id) == (peer, sid)
            and not isinstance(a, WaitForCredit | Resume | VerifyRequest)
        ]
        return a


def receiver(**kw: object) -> TxReceiver:
    return TxReceiver(Mempool(), chain_id=DEFAULT_CHAIN_ID, **kw)  # type: ignore[arg-type]


def patch(raw: bytes, at: int, value: bytes) -> bytes:
    return raw[:at] + value + raw[at + len(value) :]


VALID = tx_bytes(0, 0, 5)
MALFORMED: dict[str, tuple[bytes, Stage, WireCode, int]] = {
    "magic": (patch(VALID, 0, b"X"), Stage.MAGIC, WireCode.BAD_MAGIC, 0),
    "kind": (patch(VALID, 4, b"\x77"), Stage.SCHEMA, WireCode.UNKNOWN_KIND, 4),
    "version": (patch(VALID, 5, b"\x09"), Stage.HEADER, WireCode.BAD_VERSION, 5),
    "chain": (patch(VALID, 12, b"\x01\x00\x00\x00"), Stage.HEADER, WireCode.BAD_CHAIN, 15),
    "offset": (patch(VALID, 21, b"\xff\xff\x00\x00"), Stage.BODY, WireCode.OFFSET_OVERRUN, 24),
    "signature": (
        patch(VALID, len(VALID) - 1, bytes([VALID[-1] ^ 1])),
        Stage.BODY,
        WireCode.BAD_SIGNATURE,
        len(VALID) - 1,
    ),
    "truncated": (VALID[:100], Stage.BODY, WireCode.TRUNCATED, 100),
    "trailing": (VALID + b"\x00", Stage.BODY, WireCode.TRAILING_DATA, len(VALID)),
}


@pytest.mark.parametrize("defer", [False, True], ids=["inline-verify", "deferred-verify"])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_malformed_streams_are_rejected_while_valid_ones_land(defer: bool, chunk: int) -> None:
    rx = receiver(defer_verification=defer)
    d = Driver(rx, chunk)
    bad, good = b"peer-bad", b"peer-good"
    sid = 0
    expected_bad: dict[int, tuple[Stage, WireCode, int]] = {}
    valid_ids: list[bytes] = []
    for i, (raw, stage, code, offset) in enumerate(MALFORMED.values()):
        d.open(bad, sid, raw)
        expected_bad[sid] = (stage, code, offset)
        sid += 4
        ok = tx_bytes(1, i, 3)  # the same peer's valid streams, interleaved with the bad ones
        d.open(bad, sid, ok)
        valid_ids.append(parse_tx(ok).tx_id)
        sid += 4
    for i in range(5):  # a second peer
        ok = tx_bytes(2, i, 4)
        d.open(good, 4 * i, ok)
        valid_ids.append(parse_tx(ok).tx_id)
    d.run()
    for s, (stage, code, offset) in expected_bad.items():
        a = d.of(bad, s)
        assert isinstance(a, RejectStream), a
        if defer and code is WireCode.BAD_SIGNATURE:
            assert (a.stage, a.code) == (stage, code)  # found after FIN: offset is the last byte
        else:
            assert (a.stage, a.code, a.offset) == (stage, code, offset)
    admitted = [a.result.tx_id for a in d.actions if isinstance(a, TxAdmitted)]
    assert sorted(admitted) == sorted(valid_ids)
    assert all(t in rx.pool for t in valid_ids)
    want_penalty = sum(PENALTY.get(c, DEFAULT_PENALTY) for _, c, _ in expected_bad.values())
    assert rx.reputation.score(bad) == -want_penalty < 0
    assert rx.reputation.score(good) == 0
    stats = rx.stats
    assert stats.admitted == len(valid_ids)
    assert stats.rejected_total == len(MALFORMED)
    assert {c for (_, c) in stats.rejected} == {c for _, c, _ in expected_bad.values()}
    assert rx.in_flight == 0 and rx.admission.buffers == 0 and rx.admission.bytes_reserved == 0


def test_byte_at_a_time_equals_whole() -> None:
    outcomes = []
    for chunk in (1, len(VALID)):
        rx = receiver()
        d = Driver(rx, chunk)
        d.open(b"p", 0, VALID)
        d.run()
        a = d.of(b"p", 0)
        assert isinstance(a, TxAdmitted)
        outcomes.append(a.result)
    assert outcomes[0] == outcomes[1]


def test_whole_buffer_is_held_without_copy() -> None:
    rx = receiver()
    rx.stream_opened(b"p", 0)
    assert rx.data_received(b"p", 0, VALID) == []
    (a,) = rx.stream_ended(b"p", 0)
    assert isinstance(a, TxAdmitted)
    view = rx.pool.get(a.result.tx_id)
    assert view is not None and view.buffer.obj is VALID  # the received object itself


def test_64_streams_interleaved_byte_by_byte_all_land() -> None:
    rx = receiver()
    d = Driver(rx, chunk=1)
    raws = [tx_bytes(s % 8, s // 8, 2 + s % 5) for s in range(64)]
    for sid, raw in enumerate(raws):
        d.open(b"peer", 4 * sid, raw)
    d.run()
    assert len(rx.pool) == 64 == rx.stats.admitted
    for sid, raw in enumerate(raws):
        a = d.of(b"peer", 4 * sid)
        assert isinstance(a, TxAdmitted)
        view = rx.pool.get(a.result.tx_id)
        assert view is not None and bytes(view.buffer) == raw


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 64))
def test_any_split_and_interleaving_gives_the_same_pool(seed: int, max_chunk: int) -> None:
    rng = random.Random(seed)
    raws = [tx_bytes(s, 0, 2 + s) for s in range(6)] + [MALFORMED["offset"][0]]
    rx = receiver()
    pending = {i: raw for i, raw in enumerate(raws)}
    for i in pending:
        rx.stream_opened(b"p", i)
    verdicts: dict[int, Action] = {}
    while pending:
        i = rng.choice(sorted(pending))
        data = pending[i]
        if not data:
            del pending[i]
            out = rx.stream_ended(b"p", i)
        else:
            n = rng.randint(1, max_chunk)
            pending[i] = data[n:]
            out = rx.data_received(b"p", i, data[:n])
        for a in out:
            verdicts[a.stream_id] = a
            pending.pop(a.stream_id, None)
    assert all(isinstance(verdicts[i], TxAdmitted) for i in range(6))
    rej = verdicts[6]
    assert isinstance(rej, RejectStream) and rej.code is WireCode.OFFSET_OVERRUN
    assert len(rx.pool) == 6


def test_stage5_rejections_do_not_reset_and_cost_nothing_for_duplicates() -> None:
    rx = TxReceiver(Mempool(min_fee=3))
    d = Driver(rx, chunk=50)
    d.open(b"p", 0, VALID)
    d.open(b"p", 4, VALID)  # same tx twice
    d.open(b"p", 8, tx_bytes(3, 0, 1))  # fee below the floor
    d.run()
    assert isinstance(d.of(b"p", 0), TxAdmitted)
    dup, low = d.of(b"p", 4), d.of(b"p", 8)
    assert isinstance(dup, TxRejected) and dup.code is WireCode.DUPLICATE
    assert isinstance(low, TxRejected) and low.code is WireCode.FEE_TOO_LOW
    assert rx.reputation.score(b"p") == -PENALTY[WireCode.FEE_TOO_LOW]
    assert rx.stats.rejects_by_stage() == {Stage.MEMPOOL: 2}


def test_slot_backpressure_waits_then_resumes() -> None:
    rx = receiver(admission=AdmissionController(max_buffers=2, max_bytes=MAX_TX_SIZE))
    raws = [tx_bytes(s, 0, 5) for s in range(5)]
    d = Driver(rx, chunk=16)
    for sid, raw in enumerate(raws):
        d.open(b"p", sid, raw)
    assert d.paused == {(b"p", 2), (b"p", 3), (b"p", 4)}
    with pytest.raises(LocalProtocolError):
        rx.data_received(b"p", 2, b"\x7f")  # the driver must not deliver while paused
    peak = 0
    while d.step():
        peak = max(peak, rx.admission.buffers)
    assert peak == 2
    assert len(rx.pool) == 5 and rx.stats.waits == 3 and rx.stats.resumes == 3


def test_byte_budget_backpressure() -> None:
    big = [tx_bytes(s, 0, 5, 12_000) for s in range(4)]  # ~12 KiB each; budget fits two
    rx = receiver(admission=AdmissionController(max_bytes=MAX_TX_SIZE))
    d = Driver(rx, chunk=1000)
    for sid, raw in enumerate(big):
        d.open(b"p", sid, raw)
    d.step()  # everyone gets its first chunk: header length known, reservations asked
    assert d.paused == {(b"p", 2), (b"p", 3)}
    assert rx.admission.bytes_reserved == 2 * len(big[0]) <= MAX_TX_SIZE
    peak = 0
    while d.step():
        peak = max(peak, rx.admission.bytes_reserved)
    assert peak <= MAX_TX_SIZE
    assert len(rx.pool) == 4 and rx.admission.bytes_reserved == 0


def test_peer_reset_and_connection_close_free_only_that_peers_streams() -> None:
    rx = receiver(admission=AdmissionController(max_buffers=3, max_bytes=MAX_TX_SIZE))
    rx.stream_opened(b"a", 0)
    rx.stream_opened(b"a", 4)
    rx.stream_opened(b"b", 0)
    assert rx.stream_opened(b"b", 4) == [WaitForCredit(b"b", 4)]
    rx.data_received(b"a", 0, VALID[:50])
    rx.data_received(b"b", 0, tx_bytes(4, 0, 5)[:30])
    assert rx.stream_reset(b"a", 0) == [Resume(b"b", 4)]
    assert rx.stream_reset(b"a", 0) == []  # idempotent
    assert rx.peer_closed(b"a") == []  # stream 4 had no waiter to wake
    assert rx.peer_closed(b"a") == []
    assert rx.in_flight == 2 and rx.stats.peer_resets == 2
    other = tx_bytes(4, 0, 5)
    rx.data_received(b"b", 0, other[30:])
    (a, *_) = rx.stream_ended(b"b", 0)
    assert isinstance(a, TxAdmitted)
    assert rx.reputation.score(b"a") == 0  # a reset is the peer's right, not misbehaviour


def test_stalled_stream_times_out_but_waiting_ones_do_not() -> None:
    rx = receiver(admission=AdmissionController(max_buffers=1), stream_timeout=5.0)
    rx.stream_opened(b"p", 0, now=0.0)
    rx.stream_opened(b"p", 4, now=0.0)  # waits for a slot
    rx.data_received(b"p", 0, VALID[:30], now=1.0)
    assert rx.tick(5.5) == []
    out = rx.tick(6.5)
    assert out[0] == RejectStream(b"p", 0, Stage.BODY, WireCode.TIMEOUT, 30, "stream stalled")
    assert out[1:] == [Resume(b"p", 4)]
    assert rx.tick(11.0) == []  # stream 4 was resumed at 6.5: its idle clock restarted
    (late,) = rx.tick(11.6)
    assert (late.stream_id, late.stage, late.code) == (4, Stage.MAGIC, WireCode.TIMEOUT)


def test_deferred_verification_skips_known_ids_and_ignores_late_results() -> None:
    rx = receiver(defer_verification=True)
    rx.stream_opened(b"p", 0)
    rx.data_received(b"p", 0, VALID)
    (req,) = rx.stream_ended(b"p", 0)
    assert isinstance(req, VerifyRequest) and bytes(req.view.buffer) == VALID
    (adm,) = rx.verified(b"p", 0, True)
    assert isinstance(adm, TxAdmitted)
    assert rx.verified(b"p", 0, True) == []  # late / duplicate result: ignored
    rx.stream_opened(b"q", 0)
    rx.data_received(b"q", 0, VALID)
    (dup,) = rx.stream_ended(b"q", 0)  # already pooled: no signature check needed
    assert isinstance(dup, TxRejected) and dup.code is WireCode.DUPLICATE


def test_input_after_a_verdict_is_ignored() -> None:
    rx = receiver()
    rx.stream_opened(b"p", 0)
    (rej,) = rx.data_received(b"p", 0, b"NOPE")
    assert isinstance(rej, RejectStream) and rej.code is WireCode.BAD_MAGIC
    assert rx.data_received(b"p", 0, b"more") == []
    assert rx.stream_ended(b"p", 0) == []
    rx.stream_opened(b"q", 0)
    with pytest.raises(LocalProtocolError):
        rx.stream_opened(b"q", 0)


def _deliver(rx: TxReceiver, peer: bytes, sid: int, raw: bytes) -> list[Action]:
    rx.stream_opened(peer, sid)
    rx.data_received(peer, sid, raw)
    return rx.stream_ended(peer, sid)


def test_deferred_path_runs_the_cheap_checks_before_any_signature() -> None:
    pool = Mempool(nonce_floor=lambda s: 4, balance=lambda s: 10)
    rx = TxReceiver(pool, chain_id=DEFAULT_CHAIN_ID, defer_verification=True)
    bad_sig = patch(tx_bytes(0, 0, 5), len(VALID) - 1, bytes([VALID[-1] ^ 1]))
    low = _deliver(rx, b"p", 0, bad_sig)  # nonce 0 < committed 4: refused on a lookup
    poor = _deliver(rx, b"p", 4, tx_bytes(1, 4, 50))  # fee 50 > balance 10
    assert [type(a) for a in low + poor] == [TxRejected, TxRejected]  # no VerifyRequest
    assert [a.code for a in low + poor if isinstance(a, TxRejected)] == [
        WireCode.NONCE_TOO_LOW,
        WireCode.INSUFFICIENT_BALANCE,
    ]
    assert [a.account_nonce for a in low + poor if isinstance(a, TxRejected)] == [4, 4]
    (req,) = _deliver(rx, b"p", 8, tx_bytes(2, 4, 5))  # passes: only now the signature
    assert isinstance(req, VerifyRequest)
    (adm,) = rx.verified(b"p", 8, True)
    assert isinstance(adm, TxAdmitted) and adm.account_nonce == 4


def test_max_pending_pushes_back_before_the_signature_and_credit_falls_to_zero() -> None:
    rx = TxReceiver(Mempool(), chain_id=DEFAULT_CHAIN_ID, defer_verification=True, max_pending=2)
    assert rx.credit() == 2
    for sid, sender in enumerate(range(2)):
        (req,) = _deliver(rx, b"p", 4 * sid, tx_bytes(sender, 0, 5))
        assert isinstance(req, VerifyRequest)
        rx.verified(b"p", 4 * sid, True)
    assert len(rx.pool) == 2 and rx.credit() == 0
    (out,) = _deliver(rx, b"p", 8, tx_bytes(2, 0, 5))  # answered at once: no VerifyRequest
    assert isinstance(out, TxRejected) and out.code is WireCode.RATE_LIMITED
    assert rx.stats.pushed_back == 1
    rx.max_pending = None  # the driver raised the bound: the high water alone rules again
    assert rx.credit() == 64


def test_a_verified_request_is_admitted_even_if_credit_ran_out_while_it_was_checked() -> None:
    rx = TxReceiver(Mempool(), chain_id=DEFAULT_CHAIN_ID, defer_verification=True, max_pending=1)
    (a,) = _deliver(rx, b"p", 0, tx_bytes(0, 0, 5))
    (b,) = _deliver(rx, b"p", 4, tx_bytes(1, 0, 5))  # both screened while the pool was empty
    assert isinstance(a, VerifyRequest) and isinstance(b, VerifyRequest)
    got = rx.verified(b"p", 0, True) + rx.verified(b"p", 4, True)
    assert [type(x) for x in got] == [TxAdmitted, TxAdmitted]  # the check was paid for
    assert len(rx.pool) == 2 and rx.credit() == 0


def test_deferred_results_in_request_order_keep_a_senders_nonce_order() -> None:
    rx = receiver(defer_verification=True)
    reqs = [_deliver(rx, b"p", 4 * n, tx_bytes(0, n, 5))[0] for n in range(3)]
    assert all(isinstance(r, VerifyRequest) for r in reqs)
    admitted = [rx.verified(b"p", 4 * n, True)[0] for n in range(3)]
    assert [a.result.tx_id for a in admitted if isinstance(a, TxAdmitted)] == [
        parse_tx(tx_bytes(0, n, 5)).tx_id for n in range(3)
    ]
    assert rx.pool.sender_nonces(parse_tx(tx_bytes(0, 0, 5)).sender) == [0, 1, 2]
