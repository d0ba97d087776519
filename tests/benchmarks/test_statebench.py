"""Row "State commit": its inputs are what it says, its figures come from real runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapstack.benchmarks import statebench
from zapstack.zapdb import ZapDB, batch, reference_root, smt


def test_entries_are_distinct_deterministic_and_sized() -> None:
    a = statebench.entries(500, 1)
    assert a == statebench.entries(500, 1) != statebench.entries(500, 2)
    assert len({k for k, _ in a}) == 500 and all(len(v) == 96 for _, v in a)
    assert all(len(v) == 32 for _, v in statebench.entries(10, 1, value=32))


def test_zap_commit_stores_exactly_the_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = statebench.entries(300, 4)
    kept: list[bytes] = []
    real_open = ZapDB.open

    def spy(path: Path, **kw: object) -> ZapDB:
        db = real_open(path, **kw)  # type: ignore[arg-type]
        real_close = db.close

        def close() -> None:
            kept.append(db.root())
            real_close()

        db.close = close  # type: ignore[method-assign]
        return db

    monkeypatch.setattr(ZapDB, "open", spy)
    statebench._zap_commit(tmp_path / "z", items)
    assert kept == [reference_root(dict(items))]
    assert not (tmp_path / "z").exists()


def test_bulk_commit_pure_python_mode_is_restored(tmp_path: Path) -> None:
    before = (batch.FAST, smt.FAST)
    figs = statebench.bulk_commit(tmp_path, 400, 1, fast=False)
    assert before == (batch.FAST, smt.FAST)
    names = {"commit_keys_s", "set_commit_keys_s", "raw_keys_s"}
    paired = {"commit_pct_paired", "set_commit_pct_paired"}
    assert set(figs) == names | {f"{n}_cpu" for n in names} | paired
    assert all(v > 0 for v in figs.values()) and figs["set_commit_keys_s"] <= figs["commit_keys_s"]


def test_paired_percent_is_the_median_of_each_turns_ratio() -> None:
    zap = [(2.0, 9.0), (4.0, 9.0), (10.0, 9.0)]
    raw = [(1.0, 9.0), (1.0, 9.0), (1.0, 9.0)]  # ratios 50%, 25%, 10%
    assert statebench._paired_pct(zap, raw) == pytest.approx(25.0)
    # a drift that slows both runs of a turn alike leaves that turn's ratio alone
    assert statebench._paired_pct([(2.0, 0), (20.0, 0)], [(1.0, 0), (10.0, 0)]) == 50.0


def test_tiny_row_has_every_figure(tmp_path: Path) -> None:
    row = statebench.run(600, 0, repeat=1, processes=False)  # peer processes: test_statepeer
    assert row.key == "state_commit" and row.unit == "keys/s" and row.native_limit
    assert row.pipelined > 0 and row.serial > 0 and row.extras["commit_pct_paired"] > 0
    for name in ("root_us_at_1000", "commit_us_at_1000", "raw_us_at_1000"):
        assert row.extras[name] > 0
    # 100 changed keys of 1,000: each rewrites its leaf and the interior nodes on its path
    assert 2 < row.extras["nodes_per_key_at_1000"] < 12
    assert row.extras["root_us_per_node_at_1000"] > 0
    # kh (17-byte key) and vh (32-byte value) take one compression each, a record two
    blocks = row.extras["sha_blocks_per_key_at_1000"]
    assert blocks == pytest.approx(2 + 2 * row.extras["nodes_per_key_at_1000"])
    assert row.extras["root_ns_per_block_at_1000"] > 0
    for name in ("client_pct_paired", "sync1_pct_paired", "sync3_pct_paired"):
        assert row.extras[name] > 0
    assert row.extras["sync1_MBps"] > 0 and row.extras["sync3_MBps"] > 0
    assert row.extras["client_MBps"] > 0 and row.extras["client_MBps_cpu"] > 0
    assert row.extras["state_MB"] == pytest.approx(600 * (17 + 96) / 1e6, rel=0.05)
    # 2**3 chunks of ~75 entries fit one reply of 16; it carries the entries and their proofs
    assert row.extras["chunk_depth"] == 3 and row.extras["replies"] == 1
    assert row.extras["state_MB"] < row.extras["reply_MB"] < 2 * row.extras["state_MB"]


def test_sha_blocks_follow_fips_180_4_padding() -> None:
    # 0..55 bytes fit one block with the 9 bytes of padding; 56..119 need two
    assert [statebench.sha_blocks(n) for n in (0, 55, 56, 64, 65, 119, 120)] == [
        1,
        1,
        2,
        2,
        2,
        2,
        3,
    ]
    # a 1,000-key block on 10k keys rewrites ~5.57 records per key: 2 + 2 x 5.57
    assert statebench.sha_blocks_per_key(17, 32, 5.57) == pytest.approx(13.14)
