"""Issue 13: a zero-funds flood of >= 50,000 txs against a live 4-validator devnet while
honest users keep sending: >= 95 % of the honest txs first sent during the flood and
100 % of those sent after it are finalized.  Long (minutes): ``make soak`` only."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapstack.devnet.flood import run_flood


@pytest.mark.soak
def test_honest_txs_keep_landing_under_a_zero_funds_flood(tmp_path: Path) -> None:
    r = run_flood(tmp_path / "net", flood_txs=50_000)
    print(
        f"flood: {r.flood_sent} txs in {r.flood_s:.1f} s {r.flood_codes}; honest finalized "
        f"during {r.during[0]}/{r.during[1]}, after {r.after[0]}/{r.after[1]}; "
        f"height {r.height}; honest rejects {r.honest_codes}"
    )
    assert r.flood_sent >= 50_000
    assert r.flood_codes.get("NO_ERROR", 0) == 0  # no unfunded tx got in
    assert r.during[1] > 0 and r.during[0] >= 0.95 * r.during[1]
    assert r.after[1] > 0 and r.after[0] == r.after[1]
