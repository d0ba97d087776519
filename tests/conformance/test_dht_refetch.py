"""The dht_refetch suite: the checked-in file passes the runner and regenerates byte-identically."""

from __future__ import annotations

from pathlib import Path

from zapstack.conformance import dht_refetch, encode_line, run_files

FILE = Path(__file__).resolve().parents[2] / "vectors" / "pipeline" / "dht_refetch.jsonl"


def test_checked_in_vectors_pass_the_runner() -> None:
    reports = run_files([FILE])
    assert set(reports) == {"dht_refetch"}
    r = reports["dht_refetch"]
    assert r.failed == 0 and r.passed == dht_refetch.CASES + 9 >= 39, r.failures[:1]


def test_regeneration_is_byte_identical() -> None:
    text = "".join(encode_line(c) + "\n" for c in dht_refetch.generate(dht_refetch.SEED))
    assert text == FILE.read_text(encoding="utf-8")


def test_suite_covers_the_adversarial_shapes() -> None:
    cases = [c for c in dht_refetch.generate(dht_refetch.SEED) if "error" not in c.expected]
    ops = {op["op"] for c in cases for op in c.input["schedule"]}
    tampers = {op.get("tamper") for c in cases for op in c.input["schedule"]}
    assert {"chunk", "header", "bytes", "disconnect", "garbage", "end"} <= ops
    assert {"data", "proof", "short", "wrong_index", "block_id", "filler", "root"} <= tampers
    assert any(c.expected["complete"] for c in cases)
    assert any(not c.expected["complete"] for c in cases)
    assert any(c.input["payload_len"] % 65536 for c in cases)  # short last chunks
    for c in cases:
        if c.expected["complete"]:  # the conformance requirement itself
            assert c.expected["block_sha256"] == c.input["block_id"]
        assert not any(p.startswith("p") for p in c.expected["blamed"])  # honest never blamed
