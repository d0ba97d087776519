"""The malicious peer's garbage, offline: every kind is garbage, and what it counts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from zapstack.devnet.malicious import _BAD_TX, _BAD_TYPE, MaliciousPeer
from zapstack.errors import ZapError
from zapstack.node.genesis import devnet_user, load_genesis, make_devnet
from zapstack.node.wire import MsgType
from zapstack.transport.events import End
from zapstack.zap.frames import build_transfer, parse_tx


@pytest.mark.parametrize("corrupt", _BAD_TX)
def test_every_bad_tx_frame_is_rejected(tmp_path: Path, corrupt: object) -> None:
    make_devnet(tmp_path, 4)
    g = load_genesis(tmp_path / "genesis.json")
    frame = build_transfer(devnet_user(b"x", 63), bytes(32), 1, 1, 7, g.chain_id)
    parse_tx(frame, chain_id=g.chain_id)
    with pytest.raises(ZapError):
        parse_tx(corrupt(frame), chain_id=g.chain_id)  # type: ignore[operator]


def test_bad_consensus_stream_starts_with_no_message_type() -> None:
    assert _BAD_TYPE[0] not in {int(t) for t in MsgType}


def test_settle_counts_stopped_streams_and_keeps_open_ones(tmp_path: Path) -> None:
    make_devnet(tmp_path, 4)
    evil = MaliciousPeer(load_genesis(tmp_path / "genesis.json"))
    still_open = SimpleNamespace(end=None)
    evil.open = [  # type: ignore[list-item]
        ("tx frame", SimpleNamespace(end=(End.STOPPED, 0x11))),
        ("tx frame", SimpleNamespace(end=(End.FIN, None))),
        ("consensus short", SimpleNamespace(end=(End.ABORTED, None))),
        ("consensus type", still_open),
    ]
    evil._settle()
    assert evil.stats.stopped == {"tx frame": 1}
    assert evil.stats.cut_off == {"consensus short": 1}
    assert evil.stats.refused("tx frame") == 1 and evil.stats.refused("consensus short") == 1
    assert evil.open == [("consensus type", still_open)]
    asyncio.run(evil.close())  # safe although it never dialled
