"""The stream_reset vector file: checked in, reproducible, run over qh3 and aioquic."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from zapstack.conformance import encode_line, run_files, stream_reset
from zapstack.conformance.runner import run_case as run_one

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "pipeline" / "stream_reset.jsonl"


def test_regeneration_is_byte_identical() -> None:
    text = "".join(encode_line(c) + "\n" for c in stream_reset.generate(stream_reset.SEED))
    assert text == VECTORS.read_text(encoding="utf-8")


def test_checked_in_vectors_pass_over_both_stacks() -> None:
    reports = run_files([VECTORS])
    assert reports["stream_reset"].failed == 0, reports["stream_reset"].failures
    assert reports["stream_reset"].passed == 21


def test_model_pins_reset_semantics() -> None:
    ops = [["open", 0], ["write", 0, 100], ["cancel", 0, 7], ["write", 0, 5], ["cancel", 0, 8]]
    got = stream_reset.expected_observation(ops)
    assert got["events"] == ["s0 open", "s0 bytes 100", "s0 RESET_STREAM(7)"]
    assert got["sender"][0] == {"stream": 0, "end": "cancelled", "code": 7, "refused_writes": 1}


def test_a_wrong_expectation_fails() -> None:
    case = stream_reset.generate(stream_reset.SEED)[3]  # reset-after-data
    wrong = dict(case.expected)
    wrong["events"] = [*case.expected["events"][:-1], "s0 RESET_STREAM(99)"]
    result = run_one(replace(case, expected=wrong))
    assert not result.passed


def test_stacks_must_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    real = stream_reset._observe

    async def skewed(stack: str, ops: list[list[object]]) -> dict[str, object]:
        observed = await real(stack, ops)
        if stack == "qh3":
            observed["events"] = [*observed["events"], "extra"]
        return observed

    monkeypatch.setattr(stream_reset, "_observe", skewed)
    with pytest.raises(AssertionError, match="disagree"):
        stream_reset.run_case(stream_reset.generate(stream_reset.SEED)[0])


def test_case_ids_unique_and_about_twenty() -> None:
    ids = [c.id for c in stream_reset.generate(stream_reset.SEED)]
    assert len(ids) == len(set(ids)) == 21


@pytest.mark.parametrize(
    "inp",
    [
        {"ops": [["open", 1]]},  # indices open in order
        {"ops": [["open", 0], ["write", 0]]},
        {"ops": [["open", 0], ["cancel", 0, -1]]},
        {"ops": [["open", 0], ["stop", 0, 1 << 62]]},
        {"ops": [["open", 0], ["shout", 0]]},
        {"ops": "open"},
        {"ops": [], "extra": 1},
    ],
)
def test_malformed_inputs_are_refused(inp: dict[str, object]) -> None:
    case = stream_reset.generate(stream_reset.SEED)[0]
    assert run_one(replace(case, input=inp, expected={"error": "BAD_INPUT"})).passed


def test_a_wrong_transport_fails_and_the_expected_values_do_not_follow_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A transport whose CancelWrite always sends code 0, on both stacks alike.

    The stacks agree with each other, so only the reference model can catch it:
    the generated file is unchanged (expected values come from the model, not
    from running the implementation) and the cases that cancel with a code fail.
    """
    from zapstack.transport.peer import OutStream

    real = OutStream.cancel_write

    async def codeless(self: OutStream, code: int, *, flush: bool = True) -> None:
        await real(self, 0, flush=flush)

    monkeypatch.setattr(OutStream, "cancel_write", codeless)
    cases = stream_reset.generate(stream_reset.SEED)
    text = "".join(encode_line(c) + "\n" for c in cases)
    assert text == VECTORS.read_text(encoding="utf-8")
    reset_after_data = next(c for c in cases if c.id.endswith("reset-after-data"))
    assert not run_one(reset_after_data).passed
