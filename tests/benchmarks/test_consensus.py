"""Row "Consensus round" at 4 validators: both rounds produce full four-leg certs."""

from __future__ import annotations

from collections.abc import Callable

from zapstack.benchmarks import consensus


def test_row(check_row: Callable[..., None]) -> None:
    row = consensus.run(4, repeat=1)
    check_row(row, "consensus_round", "ms")
    legs = ("bls", "pulsar", "corona", "magnetar")
    assert all(row.extras[f"serial_{leg}_ms"] > 0 for leg in legs)
    assert all(0 < row.extras[f"parallel_{leg}_done_ms"] <= row.pipelined for leg in legs)
    # one run: the serial round is the sum of its legs (plus bookkeeping)
    assert row.serial >= sum(row.extras[f"serial_{leg}_ms"] for leg in legs)
    assert row.extras["cert_bytes"] > 1000
