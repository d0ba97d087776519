"""The client's knobs: defaults subscribe to every push; out-of-range chunking or window is
refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from zapstack.bootstrap import BootstrapClient, BootstrapConfig
from zapstack.bootstrap.config import MAX_WINDOW
from zapstack.bootstrap.wire import MAX_BATCH, SUB_BLOCKS, SUB_MEMPOOL, SUB_VOTES
from zapstack.errors import LocalProtocolError
from zapstack.zapdb import ZapDB


def test_defaults_and_frozen() -> None:
    cfg = BootstrapConfig()
    assert cfg.subscribe == SUB_BLOCKS | SUB_MEMPOOL | SUB_VOTES and cfg.chain_id is None
    assert cfg.window == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.depth = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "cfg",
    [
        BootstrapConfig(depth=-1),
        BootstrapConfig(batch=MAX_BATCH + 1),
        BootstrapConfig(window=0),
        BootstrapConfig(window=MAX_WINDOW + 1),
    ],
)
def test_the_client_refuses_chunking_out_of_range(tmp_path: Path, cfg: BootstrapConfig) -> None:
    db = ZapDB.open(str(tmp_path / "db"))
    try:
        with pytest.raises(LocalProtocolError):
            BootstrapClient(db, lambda b, c: True, applier=None, config=cfg)  # type: ignore[arg-type]
    finally:
        db.close()
