"""Row "Tx admit" at a tiny size: both paths admit every tx; sane figures."""

from __future__ import annotations

from collections.abc import Callable

from zapstack.benchmarks import txadmit
from zapstack.zap import parse_tx


def test_txs_are_valid_and_distinct() -> None:
    txs = txadmit.make_txs(30)
    assert len({parse_tx(t).tx_id for t in txs}) == 30
    assert all(450 <= len(t) <= 560 for t in txs)


def test_paths_admit_everything() -> None:
    txs = txadmit.make_txs(150)
    assert txadmit.run_serial(txs) > 0
    # few streams and one peer: exercises stream reuse and the verify batches
    assert txadmit.run_pipelined(txs, peers=1, streams=8, threads=2) > 0
    assert txadmit.verify_limit(txs, 1) > 0


def test_row(check_row: Callable[..., None]) -> None:
    row = txadmit.run(120, peers=2, streams=16, threads=2)
    check_row(row, "tx_admit", "tx/s")
    assert row.higher_is_better and "120" in row.op
