"""The load generator's txs, offline: valid transfers with consecutive nonces, and
malformed ones that the ingress stages reject."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapstack.devnet.loadgen import _BAD_FRAMES, LoadGenerator
from zapstack.errors import ZapError
from zapstack.node.genesis import load_genesis, make_devnet
from zapstack.zap.frames import parse_tx


def _load(tmp_path: Path) -> LoadGenerator:
    make_devnet(tmp_path, 4, users=8)
    return LoadGenerator(load_genesis(tmp_path / "genesis.json"), users=8, rate=10)


def test_txs_are_valid_transfers_with_consecutive_nonces(tmp_path: Path) -> None:
    load = _load(tmp_path)
    nonces: dict[bytes, list[int]] = {}
    for _ in range(40):
        view = parse_tx(load._next_tx(), chain_id=load.g.chain_id)
        nonces.setdefault(bytes(view.pubkey), []).append(view.nonce)
    assert sum(map(len, nonces.values())) == 40
    for seq in nonces.values():
        assert seq == list(range(len(seq)))


def test_a_malformed_tx_does_not_consume_its_nonce(tmp_path: Path) -> None:
    load = _load(tmp_path)
    load._next_tx(advance=False)
    assert load.nonces == [0] * 8


@pytest.mark.parametrize("corrupt", _BAD_FRAMES)
def test_every_malformed_frame_is_rejected(tmp_path: Path, corrupt: object) -> None:
    load = _load(tmp_path)
    frame = load._next_tx()
    parse_tx(frame, chain_id=load.g.chain_id)
    with pytest.raises(ZapError):
        parse_tx(corrupt(frame), chain_id=load.g.chain_id)  # type: ignore[operator]
