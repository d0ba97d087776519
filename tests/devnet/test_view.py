"""The devnet's live view: one frame rendered from plain status dicts, admits/s sampling."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from zapstack.devnet.loadgen import LoadStats
from zapstack.devnet.view import AdmitRates, render


def _status(
    height: int, *, halted: bool = False, legs: dict[str, int] | None = None
) -> dict[str, Any]:
    recent = [
        {
            "height": h,
            "proposer": h % 4,
            "txs": 10 + h,
            "legs_ms": legs or {},
            "finalized_ms": 100 + h,
            "tier": "full",
        }
        for h in range(1, height + 1)
    ]
    return {
        "height": height,
        "round": 0,
        "halted": halted,
        "peers": [1, 2, 3],
        "mempool": 5,
        "admitted": 42,
        "rejects": {"magic": 2, "kind": 1},
        "state_root": "ab" * 32,
        "recent": recent,
    }


def _text(statuses: dict[int, dict[str, Any] | None]) -> str:
    load = SimpleNamespace(stats=LoadStats(sent=30, malformed=3, failed=1))
    group = render(statuses, load, time.monotonic() - 10, {1: 12.0})  # type: ignore[arg-type]
    out = io.StringIO()
    Console(file=out, width=200).print(group)
    return out.getvalue()


def test_render_shows_every_validator_and_the_last_eight_heights() -> None:
    text = _text(
        {
            0: None,
            1: _status(10, legs={"bls": 12, "pulsar": -1}),
            2: _status(10, halted=True),
        }
    )
    assert "starting" in text and "halted" in text
    assert "kind:1 magic:2" in text  # rejects by stage, sorted
    assert "12 ms" in text and "failed" in text  # a leg's arrival, a failed leg
    assert "110 ms" in text and "103 ms" in text and "102 ms" not in text  # heights 3..10
    assert "30 txs sent" in text and "3 malformed on purpose" in text and "1 failed" in text


def test_admit_rates_resample_at_most_once_a_second() -> None:
    rates = AdmitRates(started=0.0)
    rates.update({0: {"admitted": 10}, 1: None}, 0.5)
    assert rates.rates == {}
    rates.update({0: {"admitted": 100}}, 2.0)
    assert rates.rates == {0: 50.0}
    rates.update({0: {"admitted": 200}}, 2.5)  # too soon: unchanged
    assert rates.rates == {0: 50.0}
    rates.update({0: {"admitted": 200}}, 3.0)
    assert rates.rates == {0: 100.0}
