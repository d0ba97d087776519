import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from zapstack.cli.app import app
from zapstack.conformance import Case, CaseRejected, decode_line, encode_line, frames, run_files
from zapstack.conformance.registry import load_suite
from zapstack.conformance.runner import run_case
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


def test_an_unknown_suite_is_a_malformed_line(tmp_path: Path) -> None:
    f = tmp_path / "u.jsonl"
    f.write_text(encode_line(Case("nope", "1", {}, {})) + "\n")
    with pytest.raises(ConfigError, match=r"u.jsonl:1: malformed line: unknown vector suite"):
        run_files([f])
    with pytest.raises(ConfigError):
        load_suite("nope")


def test_duplicate_ids_are_malformed_lines(tmp_path: Path) -> None:
    line = VECTORS.read_text().splitlines()[0]
    f = tmp_path / "d.jsonl"
    f.write_text(line + "\n" + line + "\n")
    with pytest.raises(ConfigError, match=r"d.jsonl:2: malformed line: duplicate id"):
        run_files([f])


def test_every_malformed_line_is_listed(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    f.write_text("not json\n" + VECTORS.read_text().splitlines()[0] + "\n[]\n")
    with pytest.raises(ConfigError) as info:
        run_files([f])
    assert "2 malformed line(s)" in str(info.value)
    assert "m.jsonl:1:" in str(info.value) and "m.jsonl:3:" in str(info.value)


def test_an_implementation_error_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = decode_line(VECTORS.read_text().splitlines()[0])

    def broken(_: Case) -> dict[str, Any]:
        raise KeyError("boom")

    monkeypatch.setattr(frames, "run_case", broken)
    result = run_case(case)
    assert not result.passed
    assert result.detail == "implementation raised KeyError: 'boom'"
    assert "Traceback" not in result.detail


def test_a_refusal_is_compared_as_the_error_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: Case) -> dict[str, Any]:
        raise CaseRejected("BAD_INPUT", "no")

    monkeypatch.setattr(frames, "run_case", refuse)
    assert run_case(Case("frames", "r", {}, {"error": "BAD_INPUT"})).passed
    wrong = run_case(Case("frames", "r", {}, {"error": "OTHER"}))
    assert not wrong.passed and "BAD_INPUT" in wrong.detail


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", 1),  # no case ran
        ("dup", 2),
        ("nope", 2),
        ("ok", 0),
    ],
)
def test_cli_exit_codes(tmp_path: Path, text: str, code: int) -> None:
    first = VECTORS.read_text().splitlines()[0]
    body = {
        "": "",
        "dup": first + "\n" + first + "\n",
        "nope": encode_line(Case("nope", "1", {}, {})) + "\n",
        "ok": first + "\n",
    }[text]
    f = tmp_path / "v.jsonl"
    f.write_text(body)
    result = CliRunner().invoke(app, ["conformance", "run", str(f)])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
