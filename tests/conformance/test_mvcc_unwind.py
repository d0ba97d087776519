"""The mvcc_unwind vector file: runs clean, regenerates byte-identically, seed-invariant."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapstack.conformance import decode_line, encode_line, mvcc_unwind, run_files

FILE = Path(__file__).resolve().parents[2] / "vectors" / "pipeline" / "mvcc_unwind.jsonl"


def test_vector_file_passes_through_the_runner() -> None:
    reports = run_files([FILE])
    report = reports[mvcc_unwind.NAME]
    assert report.failed == 0, report.failures[:1]
    assert report.passed == mvcc_unwind.CASES == 50


def test_regeneration_is_byte_identical() -> None:
    text = "".join(encode_line(c) + "\n" for c in mvcc_unwind.generate(mvcc_unwind.SEED))
    assert text == FILE.read_text(encoding="utf-8")


@pytest.mark.parametrize("seed", [None, 1, 0xDEADBEEF])
def test_root_does_not_depend_on_write_order(seed: int | None) -> None:
    for line in FILE.read_text(encoding="utf-8").splitlines():
        case = decode_line(line)
        assert mvcc_unwind.run_case(case, write_order_seed=seed) == case.expected


def test_vectors_exercise_every_operation_and_outcome() -> None:
    seen: set[tuple[str, str]] = set()
    for case in mvcc_unwind.generate(mvcc_unwind.SEED):
        for op, result in zip(case.input["ops"], case.expected["results"], strict=True):
            seen.add((op["op"], result if len(result) < 10 else "root"))
    for want in [
        ("insert", "ok"),
        ("delete", "ok"),
        ("snapshot", "ok"),
        ("insert_on", "ok"),
        ("insert_on", "closed"),
        ("delete_on", "ok"),
        ("tx", "ok"),
        ("rollback", "ok"),
        ("rollback", "noop"),
        ("discard", "ok"),
        ("commit", "ok"),
        ("commit", "conflict"),
        ("commit", "closed"),
        ("root_on", "root"),
    ]:
        assert want in seen


def test_a_wrong_expectation_is_reported() -> None:
    case = mvcc_unwind.generate(mvcc_unwind.SEED)[3]
    actual = mvcc_unwind.run_case(case)
    assert actual == case.expected
    tampered = dict(case.expected, root="00" * 32)
    assert actual != tampered
