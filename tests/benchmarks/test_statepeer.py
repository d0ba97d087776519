"""State sync from peer processes over real QUIC reaches the served root, or says why not."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapstack.benchmarks import statebench
from zapstack.benchmarks.statepeer import sync_from_processes
from zapstack.zapdb import ZapDB


def _source(tmp_path: Path, n: int) -> tuple[Path, tuple[bytes, bytes], bytes]:
    src, chain = statebench._server(tmp_path / "src", statebench.entries(n, 5))
    root = src.root()
    src.close()
    return tmp_path / "src", chain.blocks[-1], root


@pytest.mark.parametrize("peers", [1, 2])
def test_a_fresh_store_reaches_the_served_root(tmp_path: Path, peers: int) -> None:
    src, (block, cert), root = _source(tmp_path, 1500)
    lap = sync_from_processes(src, block, cert, peers, tmp_path / "client", 4, root)
    assert lap.wall > 0 and lap.cpu > 0 and 0 < lap.loop_cpu <= lap.cpu
    assert lap.peers_cpu > 0  # the peers served every chunk: they used some CPU
    synced = ZapDB.open(tmp_path / "client", map_size=1 << 30)
    served = ZapDB.open(src, map_size=1 << 30)
    try:
        assert synced.root() == root
        with synced.read() as view, served.read() as source:
            assert list(view.iterate()) == list(source.iterate())
    finally:
        synced.close()
        served.close()


def test_a_wrong_expected_root_is_reported(tmp_path: Path) -> None:
    src, (block, cert), root = _source(tmp_path, 300)
    wrong = bytes(b ^ 1 for b in root)
    with pytest.raises(AssertionError, match="did not reach"):
        sync_from_processes(src, block, cert, 1, tmp_path / "client", 2, wrong)
