"""The load generator's txs, offline: valid transfers whose nonce advances only on an
answer that takes it, the same frame resubmitted otherwise, and malformed frames that
the ingress stages reject."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapstack.devnet.loadgen import _BAD_FRAMES, LoadGenerator, Next
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
