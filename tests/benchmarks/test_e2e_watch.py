"""The status watcher over hand-written status files (no nodes)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from zapstack.benchmarks.e2e_watch import Watcher


def _status(home: Path, height: int, head: str, recent: list[dict[str, Any]], age: float) -> None:
    home.mkdir(exist_ok=True)
    path = home / "status.json"
    doc = {"height": height, "head": head, "state_root": "r" + head, "mempool": 3}
    path.write_text(json.dumps(doc | {"recent": recent}))
    t = time.time() - age
    os.utime(path, (t, t))


def test_poll_keeps_heights_with_write_times_records_and_agreement(tmp_path: Path) -> None:
    homes = [tmp_path / "a", tmp_path / "b"]
    rec = {"height": 5, "txs": 40, "legs_ms": {"bls": 90, "pulsar": 120}}
    _status(homes[0], 5, "h5", [rec], age=10.0)
    _status(homes[1], 4, "h4", [{"height": 4, "txs": 7, "legs_ms": {}}], age=0.0)
    w = Watcher(homes)
    before = time.monotonic()
    w.poll()
    (t0, h0), (t1, h1) = w.observations
    assert (h0, h1) == (5, 4)
    assert before - 11.0 < t0 < before - 9.0  # the file's write time, not the poll's
    assert t1 <= time.monotonic()
    assert w.records == {5: rec}  # only the aggregator's record carries legs
    assert w.txs == {5: 40, 4: 7}
    assert w.heights() == [5, 4] and w.mempools() == 6 and not w.agreed()
    _status(homes[1], 5, "h5", [], age=0.0)
    w.poll()
    assert w.agreed()


def test_missing_status_is_skipped(tmp_path: Path) -> None:
    w = Watcher([tmp_path / "none"])
    w.poll()
    assert w.observations == [] and not w.agreed()
