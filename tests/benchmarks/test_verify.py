"""Row "Block verify" at a tiny size."""

from __future__ import annotations

from collections.abc import Callable

from zapstack.benchmarks import verify


def test_row(check_row: Callable[..., None]) -> None:
    row = verify.run(40, repeat=1)
    check_row(row, "block_verify", "ms")
    assert not row.higher_is_better
    assert row.pipelined == min(row.extras["thread_pool_ms"], row.extras["process_pool_ms"])
