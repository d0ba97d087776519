"""The table runner: every row at a tiny size, JSON and PNG written, failures reported."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from zapstack.benchmarks import table
from zapstack.benchmarks.result import RowResult


def test_tiny_table_writes_json_and_png(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    sizes = replace(table.TINY, validators=4)
    # the slow rows (consensus, QUIC processes, the devnet) have their own tests
    slow = ("consensus_round", "tx_admit_quic", "e2e_devnet")
    cheap = [k for k in table.ROWS if k not in slow]
    assert table.run_and_report(sizes, tmp_path, only=cheap, console=console) == 0
    doc = json.loads((tmp_path / "perf.json").read_text())
    assert [r["key"] for r in doc["rows"]] == cheap
    assert doc["errors"] == {} and doc["host"]["cores"] >= 1
    assert all(r["serial"] > 0 and r["pipelined"] > 0 for r in doc["rows"])
    assert (tmp_path / "perf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = console.export_text()
    assert "cores" in text and "Tx admit" in text and "State backup" in text


def test_failed_row_is_reported_and_others_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(_s: table.Sizes) -> RowResult:
        raise RuntimeError("disk on fire")

    def fake(s: table.Sizes) -> RowResult:
        return RowResult("state_backup", f"{s.accounts}", "s", "p", 1.0, 3.0, "MB/s", True, 3.0, "")

    monkeypatch.setitem(table.ROWS, "tx_admit", boom)
    monkeypatch.setitem(table.ROWS, "state_backup", fake)
    monkeypatch.setitem(table.ROWS, "tx_admit_quic", lambda _s: None)  # skipped
    console = Console(record=True, width=200)
    only = ["--only", "tx_admit", "--only", "tx_admit_quic", "--only", "state_backup"]
    code = table.main(
        ["--out", str(tmp_path), "--quick", "--validators", "7", *only], console=console
    )
    assert code == 1
    doc = json.loads((tmp_path / "perf.json").read_text())
    assert doc["errors"] == {"tx_admit": "RuntimeError: disk on fire"}
    assert [r["key"] for r in doc["rows"]] == ["state_backup"]
    assert doc["sizes"]["accounts"] == table.QUICK.accounts
    assert doc["sizes"]["validators"] == 7
    assert doc["rows"][0]["op"] == str(table.QUICK.accounts)
    assert "skipped" in console.export_text()
