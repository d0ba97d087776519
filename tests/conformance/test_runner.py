import json
from pathlib import Path

import pytest

from zapstack.conformance import Case, decode_line, encode_line, run_files
from zapstack.conformance.registry import load_suite
from zapstack.errors import ConfigError

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "pipeline" / "frames.jsonl"


def test_envelope_round_trip() -> None:
    case = Case("frames", "x", {"a": 1}, {"b": "00"})
    assert decode_line(encode_line(case)) == case


@pytest.mark.parametrize(
    "line", ["not json", "[]", '{"suite": 1, "id": "x", "input": {}, "expected": {}}']
)
def test_malformed_lines_are_config_errors(line: str) -> None:
    with pytest.raises(ConfigError):
        decode_line(line)


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    first = json.loads(VECTORS.read_text().splitlines()[0])
    first["expected"]["verdict"] = "rejected"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(first) + "\n")
    report = run_files([bad])["frames"]
    assert report.failed == 1 and report.passed == 0
    assert "expected" in report.failures[0].detail


def test_unknown_suite_is_reported_not_crashing(tmp_path: Path) -> None:
    f = tmp_path / "u.jsonl"
    f.write_text(encode_line(Case("nope", "1", {}, {})) + "\n")
    report = run_files([f])["nope"]
    assert report.failed == 1
    with pytest.raises(ConfigError):
        load_suite("nope")
