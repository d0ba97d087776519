from pathlib import Path

from zapstack.conformance import encode_line, frames, run_files

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "pipeline" / "frames.jsonl"


def test_checked_in_vectors_pass() -> None:
    reports = run_files([VECTORS])
    assert reports["frames"].failed == 0
    assert reports["frames"].passed >= 50


def test_regeneration_is_byte_identical() -> None:
    text = "".join(encode_line(c) + "\n" for c in frames.generate(frames.SEED))
    assert text == VECTORS.read_text(encoding="utf-8")


def test_suite_covers_every_stage() -> None:
    stages = {c.expected.get("stage") for c in frames.generate(frames.SEED)}
    assert {"MAGIC", "SCHEMA", "HEADER", "BODY"} <= stages
