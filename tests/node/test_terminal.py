"""The terminal side of zap node: banner, per-block lines (text and JSON), the log handler."""

from __future__ import annotations

import io
import json
import logging

from zapstack.node.engine import HeightRecord
from zapstack.node.terminal import ID_PREFIX, Terminal, terminal_log_handler

FIELDS = {"version": "9.9.9", "chain_id": "0x4c5558", "validator": "1 of 4", "height": 0}


def clock(*values: float):  # type: ignore[no-untyped-def]
    it = iter(values)
    return lambda: next(it)


def rec(height: int, finalized_ms: int) -> HeightRecord:
    return HeightRecord(height, 1, "ab" * 32, 17, 2, "PQ-fast", finalized_ms=finalized_ms)


def test_text_banner_and_block_lines() -> None:
    out = io.StringIO()
    t = Terminal("text", out, clock=clock(10.0, 10.5, 11.25))
    t.banner(FIELDS)
    t.block(rec(5, 69))
    t.block(rec(6, 0))  # another validator aggregated it: no finalize time here
    lines = out.getvalue().splitlines()
    assert lines[0] == "zapstack 9.9.9 -- zap node"
    assert lines[1].split() == ["chain", "id", "0x4c5558"]
    assert lines[2].split() == ["validator", "1", "of", "4"]
    assert lines[3].split() == ["height", "0"]
    first = lines[4].split()
    assert first[:4] == ["height", "5", "id", "ab" * (ID_PREFIX // 2)]
    assert first[first.index("txs") + 1] == "17" and first[first.index("tier") + 1] == "PQ-fast"
    assert first[first.index("finalize") + 1 : first.index("finalize") + 3] == ["69", "ms"]
    assert first[-2:] == ["+500", "ms"]
    second = lines[5].split()
    assert second[second.index("finalize") + 1] == "-" and second[-2:] == ["+750", "ms"]
    assert len(lines) == 6


def test_json_lines() -> None:
    out = io.StringIO()
    t = Terminal("json", out, clock=clock(1.0, 1.2))
    t.banner(FIELDS)
    t.block(rec(5, 69))
    start, block = (json.loads(line) for line in out.getvalue().splitlines())
    assert start == {"event": "start", **FIELDS}
    assert block == {
        "event": "block",
        "height": 5,
        "id": "ab" * 32,
        "txs": 17,
        "proposer": 2,
        "round": 1,
        "tier": "PQ-fast",
        "finalize_ms": 69,
        "since_ms": 200,
    }


def test_log_handler_level_and_format() -> None:
    for fmt in ("text", "json"):
        out = io.StringIO()
        handler = terminal_log_handler("warning", fmt, out)
        log = logging.getLogger(f"test.terminal.{fmt}")
        log.propagate = False
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        try:
            log.info("quiet")
            log.warning("loud %d", 7)
        finally:
            log.removeHandler(handler)
        lines = out.getvalue().splitlines()
        assert len(lines) == 1 and "quiet" not in lines[0]
        if fmt == "json":
            body = json.loads(lines[0])
            assert body["event"] == "loud 7" and body["level"] == "warning"
        else:
            assert "loud 7" in lines[0] and "warn" in lines[0]
