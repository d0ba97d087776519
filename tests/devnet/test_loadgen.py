"""The load generator's txs, offline: valid transfers whose nonce advances only on an
answer that takes it, the same frame resubmitted otherwise, and malformed frames that
the ingress stages reject."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapstack.devnet.loadgen import _BAD_FRAMES, CREDIT_START, PAUSE_S, LoadGenerator, Next
from zapstack.errors import WireCode, ZapError
from zapstack.mempool.answer import SubmitAnswer
from zapstack.node.genesis import load_genesis, make_devnet
from zapstack.zap.frames import parse_tx


def _load(tmp_path: Path) -> LoadGenerator:
    make_devnet(tmp_path, 4, users=8)
    return LoadGenerator(load_genesis(tmp_path / "genesis.json"), users=8, rate=10)


def _answer(code: WireCode, account_nonce: int = 0) -> SubmitAnswer:
    return SubmitAnswer(code, bytes(32), 1, account_nonce)


# The client's rule, written from docs/formats/streams.md §TX_SUBMIT answer:
# (answer code or None for a failed submit, account nonce) -> nonce after, same frame?
_RULES = [
    (WireCode.NO_ERROR, 0, 6, False),
    (WireCode.DUPLICATE, 0, 6, False),
    (WireCode.NONCE_TOO_LOW, 2, 6, False),  # max(5 + 1, 2)
    (WireCode.NONCE_TOO_LOW, 9, 9, False),
    (WireCode.BAD_NONCE, 3, 3, False),
    (WireCode.RATE_LIMITED, 0, 5, True),
    (WireCode.MEMPOOL_FULL, 0, 5, True),
    (WireCode.INSUFFICIENT_BALANCE, 0, 5, True),
    (WireCode.FEE_TOO_LOW, 0, 5, True),
    (WireCode.BAD_SIGNATURE, 0, 5, True),
    (None, 0, 5, True),
]


@pytest.mark.parametrize(("code", "account", "after", "same"), _RULES)
def test_an_answer_moves_the_nonce_only_when_it_takes_it(
    tmp_path: Path, code: WireCode | None, account: int, after: int, same: bool
) -> None:
    load = _load(tmp_path)
    load.nonces[3] = 5
    _, frame = load._next_tx(3)
    assert parse_tx(frame, chain_id=load.g.chain_id).nonce == 5
    step = load.settle(3, None if code is None else _answer(code, account))
    assert load.nonces[3] == after
    assert (step is Next.RETRY) is same
    _, again = load._next_tx(3)
    assert (again == frame) is same
    assert parse_tx(again, chain_id=load.g.chain_id).nonce == after


def test_admitted_txs_carry_consecutive_nonces(tmp_path: Path) -> None:
    load = _load(tmp_path)
    nonces: dict[bytes, list[int]] = {}
    for i in range(40):
        u, frame = load._next_tx(i % 8)
        view = parse_tx(frame, chain_id=load.g.chain_id)
        nonces.setdefault(bytes(view.pubkey), []).append(view.nonce)
        load.settle(u, _answer(WireCode.NO_ERROR))
    assert all(seq == list(range(5)) for seq in nonces.values()) and len(nonces) == 8


@pytest.mark.parametrize("corrupt", _BAD_FRAMES)
def test_every_malformed_frame_is_rejected(tmp_path: Path, corrupt: object) -> None:
    load = _load(tmp_path)
    _, frame = load._next_tx()
    parse_tx(frame, chain_id=load.g.chain_id)
    with pytest.raises(ZapError):
        parse_tx(corrupt(frame), chain_id=load.g.chain_id)  # type: ignore[operator]


def _credit_answer(code: WireCode, credit: int) -> SubmitAnswer:
    return SubmitAnswer(code, bytes(32), credit, 0)


def _spend(load: LoadGenerator, index: int, n: int) -> None:
    """What ``_start_one`` does per submit to validator ``index``."""
    for _ in range(n):
        load.credit[index] = load.credit.get(index, CREDIT_START) - 1


def test_credit_is_spent_per_submit_and_reset_by_each_answer(tmp_path: Path) -> None:
    load = _load(tmp_path)
    assert load._target([0], 0.0) == 0  # CREDIT_START before any answer
    _spend(load, 0, CREDIT_START)
    assert load._target([0, 1], 0.0) == 1  # validator 0 spent its allowance
    assert load._target([0], 0.0) is None  # and is not probed while answers are due
    load._count(0, _credit_answer(WireCode.NO_ERROR, 3), 0.0)
    assert load.credit[0] == 3 and load._target([0], 0.0) == 0


def test_no_credit_pauses_a_validator_then_allows_one_probe(tmp_path: Path) -> None:
    load = _load(tmp_path)
    load._count(2, _credit_answer(WireCode.RATE_LIMITED, 0), 10.0)
    assert load._target([2], 10.0) is None
    assert load._target([2], 10.0 + PAUSE_S / 2) is None
    assert load._target([2], 10.0 + PAUSE_S) == 2  # the pause is over: one probe
    assert load.credit[2] == 1
    _spend(load, 2, 1)
    assert load._target([2], 10.0 + PAUSE_S) is None  # the probe's answer is due
    assert load.stats.rejected == {"RATE_LIMITED": 1}


def test_a_failed_submit_pauses_and_a_reset_does_not_touch_credit(tmp_path: Path) -> None:
    load = _load(tmp_path)
    load._count(1, None, 5.0)
    assert load.stats.failed == 1 and load._target([1], 5.0) is None
    reset = SubmitAnswer(WireCode.BAD_MAGIC, b"", 0)  # a malformed frame's stream reset
    load._count(3, reset, 5.0)
    assert 3 not in load.credit and load._target([3], 5.0) == 3


def test_presigned_frames_are_the_ones_sent_nonce_by_nonce(tmp_path: Path) -> None:
    load = _load(tmp_path)
    assert load.presign(3, until=1.0, clock=lambda: 0.0) == 24  # 8 users x 3 nonces
    ahead = {u: dict(load.ahead[u]) for u in range(8)}
    sent = []
    for _ in range(3):
        u, frame = load._next_tx(2)
        sent.append(frame)
        load.settle(u, _answer(WireCode.NO_ERROR))
    assert sent == [ahead[2][0], ahead[2][1], ahead[2][2]]
    views = [parse_tx(f, chain_id=load.g.chain_id) for f in sent]  # signatures verify
    assert [v.nonce for v in views] == [0, 1, 2]
    assert bytes(views[0].pubkey) == load.users[2].public_key
    _, fourth = load._next_tx(2)  # past the signed-ahead frames: signed now
    assert parse_tx(fourth, chain_id=load.g.chain_id).nonce == 3
    load.settle(5, _answer(WireCode.BAD_NONCE, 2))  # user 5 resyncs to nonce 2
    assert load._next_tx(5)[1] == ahead[5][2]  # its frame still ahead is used


def test_presign_stops_at_the_deadline(tmp_path: Path) -> None:
    load = _load(tmp_path)
    assert load.presign(50, until=5.0, clock=lambda: 9.0) == 0
    ticks = iter([0.0, 0.0, 9.0])  # the clock is read every 256 signatures
    assert load.presign(100, until=5.0, clock=lambda: next(ticks)) == 512
    assert [len(a) for a in load.ahead] == [64] * 8  # one nonce for everyone at a time


@pytest.mark.parametrize(
    ("share", "credit", "mine"), [(1, 10, 10), (4, 10, 3), (4, 1, 1), (3, 0, 0)]
)
def test_clients_sharing_the_validators_take_their_share_of_each_credit(
    tmp_path: Path, share: int, credit: int, mine: int
) -> None:
    make_devnet(tmp_path, 4, users=8)
    g = load_genesis(tmp_path / "genesis.json")
    load = LoadGenerator(g, users=8, rate=10, credit_share=share)
    start = -(-CREDIT_START // share)  # rounded up: a share never starves a client
    assert load._start_credit == start
    load._count(0, _credit_answer(WireCode.NO_ERROR, credit), 5.0)
    assert load.credit[0] == mine
    assert (load._target([0], 5.0) is None) == (mine == 0)  # 0: paused, no submit
    with pytest.raises(ValueError, match="credit_share"):
        LoadGenerator(g, users=8, credit_share=0)
