"""The mvcc_unwind vector file: runs clean, regenerates byte-identically, seed-invariant."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapstack.conformance import (
    Case,
    CaseRejected,
    decode_line,
    encode_line,
    mvcc_unwind,
    run_files,
)
from zapstack.conformance.mvcc_input import EDGES
from zapstack.conformance.runner import actual_output
from zapstack.zapdb.txn import Txn

FILE = Path(__file__).resolve().parents[2] / "vectors" / "pipeline" / "mvcc_unwind.jsonl"


def test_vector_file_passes_through_the_runner() -> None:
    reports = run_files([FILE])
    report = reports[mvcc_unwind.NAME]
    assert report.failed == 0, report.failures[:1]
    assert report.passed == mvcc_unwind.CASES + len(EDGES) + 1 == 55


def test_regeneration_is_byte_identical() -> None:
    text = "".join(encode_line(c) + "\n" for c in mvcc_unwind.generate(mvcc_unwind.SEED))
    assert text == FILE.read_text(encoding="utf-8")


@pytest.mark.parametrize("seed", [None, 1, 0xDEADBEEF])
def test_root_does_not_depend_on_write_order(seed: int | None) -> None:
    for line in FILE.read_text(encoding="utf-8").splitlines():
        case = decode_line(line)
        if "error" in case.expected:
            continue
        assert mvcc_unwind.run_case(case, write_order_seed=seed) == case.expected


def test_vectors_exercise_every_operation_and_outcome() -> None:
    seen: set[tuple[str, str]] = set()
    for case in mvcc_unwind.generate(mvcc_unwind.SEED):
        if "error" in case.expected:
            continue
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


def _edge(name: str) -> Case:
    return next(c for c in mvcc_unwind.generate(mvcc_unwind.SEED) if c.id == f"mvcc-edge-{name}")


def test_a_never_opened_branch_behaves_as_a_closed_one() -> None:
    case = _edge("never-opened")
    assert case.expected["results"] == ["closed", "closed", "noop", "closed", "closed", "ok"]
    assert mvcc_unwind.run_case(case) == case.expected


def test_a_diff_of_another_branch_is_a_noop_not_an_error() -> None:
    case = _edge("diff-of-another-branch")
    assert case.expected["results"][3] == "noop"
    assert mvcc_unwind.run_case(case) == case.expected


def test_a_reused_diff_name_undoes_the_latest_live_tx_of_that_name() -> None:
    case = _edge("reused-diff-name")
    assert case.expected["results"][3:] == ["ok", case.expected["results"][4], "ok", "noop", "ok"]
    assert mvcc_unwind.run_case(case) == case.expected


def test_a_reused_branch_name_discards_the_old_branch() -> None:
    case = _edge("reused-branch-name")
    assert case.expected["results"][3] == "noop"
    assert mvcc_unwind.run_case(case) == case.expected


@pytest.mark.parametrize(
    "inp",
    [
        {"initial": [], "ops": [{"op": "rename", "snap": "a"}], "write_order_seed": 1},
        {"initial": [], "ops": [{"op": "insert", "key": "zz", "value": ""}], "write_order_seed": 1},
        {"initial": [["6b"]], "ops": [], "write_order_seed": 1},
        {"initial": [], "ops": [], "write_order_seed": -1},
        {
            "initial": [],
            "ops": [{"op": "tx", "snap": "a", "writes": [[1, 2]], "diff": "d"}],
            "write_order_seed": 1,
        },
    ],
)
def test_malformed_inputs_are_refused_with_bad_input(inp: dict[str, object]) -> None:
    case = Case(mvcc_unwind.NAME, "x", inp, {})
    with pytest.raises(CaseRejected):
        mvcc_unwind.run_case(case)
    assert actual_output(case) == {"error": "BAD_INPUT"}


def test_expected_values_do_not_come_from_zapdb(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ZapDB whose rollback undoes nothing generates the same file, and fails it."""
    monkeypatch.setattr(Txn, "rollback", lambda self, diff: False)
    cases = mvcc_unwind.generate(mvcc_unwind.SEED)
    assert "".join(encode_line(c) + "\n" for c in cases) == FILE.read_text(encoding="utf-8")
    failed = [c.id for c in cases if actual_output(c) != c.expected]
    assert "mvcc-edge-reused-diff-name" in failed and len(failed) >= 5
