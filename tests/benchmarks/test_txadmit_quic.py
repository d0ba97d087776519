"""Row "Tx admit over QUIC": runs the repository's QUIC bench at a tiny size; skips cleanly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from zapstack.benchmarks import txadmit_quic


def test_absent_script_skips_the_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(txadmit_quic, "SCRIPT", tmp_path / "bench_txadmit_quic.py")
    assert txadmit_quic.load() is None
    assert txadmit_quic.run(10) is None


@pytest.mark.skipif(not txadmit_quic.SCRIPT.is_file(), reason="not a repository checkout")
def test_row(check_row: Callable[..., None]) -> None:
    row = txadmit_quic.run(128, serial_n=32)
    assert row is not None
    check_row(row, "tx_admit_quic", "tx/s")
    assert "QUIC" in row.op and row.extras["peak_in_flight_pipelined"] >= 1
