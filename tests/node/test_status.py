"""The status record a node publishes, and its atomic file."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from zapstack.node.node import Node
from zapstack.node.status import STATUS_REFRESH_S, node_status, write_status


def test_write_status_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_status(path, {"height": 1})
    write_status(path, {"height": 2, "peers": [1]})
    assert json.loads(path.read_text()) == {"height": 2, "peers": [1]}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp file left


def test_a_fresh_node_reports_genesis(devnet_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "node-2"
    shutil.copytree(devnet_home / "node-2", home)
    shutil.copy(devnet_home / "genesis.json", tmp_path / "genesis.json")
    node = Node(home)
    try:
        status = node_status(node)
        assert node.status().keys() == status.keys()
    finally:
        node.close()
    assert status["index"] == 2 and status["height"] == 0 and status["round"] == 0
    assert status["head"] == node.g.genesis_id.hex()
    assert status["peers"] == [] and status["recent"] == [] and status["sync"] == {}
    assert status["state_sync"] is None  # no state sync runs
    assert status["mempool"] == 0 and status["admitted"] == 0
    assert not status["halted"] and status["fatal"] is None
    assert status["dht"] == {"contacts": 0, "provided": 0} and status["pushes"] == 0
    json.dumps(status)  # JSON-ready as is


class Stop(Exception):
    pass


def test_status_is_written_on_change_or_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model: a write happens at a tick iff the fingerprint changed or >= 1 s since the last."""
    from zapstack.node import status as status_mod

    ticks = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5]
    prints = [1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3]
    it = iter(zip(ticks, prints, strict=True))
    now: list[float] = []
    current: list[int] = []

    def clock() -> float:
        try:
            t, p = next(it)
        except StopIteration:
            raise Stop from None
        now.append(t)
        current.append(p)
        return t

    written: list[float] = []
    monkeypatch.setattr(status_mod, "fingerprint", lambda node: (current[-1],))
    monkeypatch.setattr(status_mod, "node_status", lambda node: {"t": now[-1]})
    monkeypatch.setattr(status_mod, "write_status", lambda path, s: written.append(s["t"]))
    node = SimpleNamespace(home=tmp_path)
    with pytest.raises(Stop):
        asyncio.run(status_mod.status_loop(node, clock=clock, period=0))  # type: ignore[arg-type]
    expected, last, seen = [], None, None
    for t, p in zip(ticks, prints, strict=True):
        if p != seen or last is None or t - last >= STATUS_REFRESH_S:
            expected.append(t)
            last, seen = t, p
    assert written == expected == [0.0, 0.5, 1.5, 1.75]


def test_record_dict_equals_asdict() -> None:
    import dataclasses

    from zapstack.node.engine import HeightRecord
    from zapstack.node.status import record_dict

    r = HeightRecord(3, 1, "ab" * 32, 9, 2, "PQ-heavy", "cd" * 32, {"bls": 5, "corona": -1}, 7)
    d = record_dict(r)
    assert d == dataclasses.asdict(r)
    r.legs_ms["pulsar"] = 6  # a later leg does not reach a record already written
    assert "pulsar" not in d["legs_ms"]
    r.stages_ms["final"] = 9
    assert record_dict(r) == dataclasses.asdict(r) and "final" not in d["stages_ms"]
