"""Run JSONL vector files and generate them from seeds.

A run first loads every line of every file (:func:`load_cases`): a line that is
not a valid envelope, names a suite this implementation does not know, or
repeats an id already seen in its suite is *malformed*, and the whole run stops
with a :class:`~zapstack.errors.ConfigError` listing every malformed line
(``zap conformance run`` exits 2).  Then each case runs: a suite that refuses
the input raises :class:`~zapstack.conformance.envelope.CaseRejected`, whose
``{"error": code}`` is the actual output; any other exception is a failed case
reported in one line (type and message, no traceback).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from zapstack.conformance.envelope import (
    Case,
    CaseRejected,
    CaseResult,
    decode_line,
    encode_line,
)
from zapstack.conformance.registry import SUITES, load_suite
from zapstack.errors import ConfigError

__all__ = ["SuiteReport", "generate_all", "load_cases", "run_case", "run_files"]

MAX_LISTED = 20
"""At most this many malformed lines are quoted in the error."""


@dataclass(slots=True)
class SuiteReport:
    """Per-suite tally."""

    suite: str
    passed: int = 0
    failed: int = 0
    failures: list[CaseResult] = field(default_factory=list)


def actual_output(case: Case) -> dict[str, object]:
    """The suite's output for ``case``; ``{"error": code}`` when it refuses the input."""
    suite = load_suite(case.suite)
    try:
        return suite.run_case(case)
    except CaseRejected as rej:
        return {"error": rej.error}


def run_case(case: Case) -> CaseResult:
    """Run one case; an unexpected exception is a failure described in one line."""
    try:
        actual = actual_output(case)
    except Exception as exc:  # a conformance runner reports, it never crashes
        detail = f"implementation raised {type(exc).__name__}: {exc}"
        return CaseResult(case.suite, case.id, False, detail)
    if actual == case.expected:
        return CaseResult(case.suite, case.id, True, "")
    return CaseResult(
        case.suite, case.id, False, f"expected {case.expected!r}\n     got {actual!r}"
    )


def load_cases(paths: Iterable[Path]) -> list[Case]:
    """Decode every non-empty line of every file; raise ConfigError on malformed lines."""
    cases: list[Case] = []
    bad: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for path in paths:
        with path.open("r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    case = decode_line(line)
                    load_suite(case.suite)
                except ConfigError as exc:
                    bad.append(f"{where}: malformed line: {exc}")
                    continue
                first = seen.setdefault((case.suite, case.id), where)
                if first != where:
                    bad.append(f"{where}: malformed line: duplicate id {case.id!r} (first {first})")
                    continue
                cases.append(case)
    if bad:
        more = f"\n... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise ConfigError(f"{len(bad)} malformed line(s):\n" + "\n".join(bad[:MAX_LISTED]) + more)
    return cases


def run_files(paths: Iterable[Path]) -> dict[str, SuiteReport]:
    """Run every case in ``paths``; return reports keyed by suite name."""
    reports: dict[str, SuiteReport] = {}
    for case in load_cases(paths):
        report = reports.setdefault(case.suite, SuiteReport(case.suite))
        result = run_case(case)
        if result.passed:
            report.passed += 1
        else:
            report.failed += 1
            report.failures.append(result)
    return reports


def generate_all(out_dir: Path, suites: Iterable[str] | None = None) -> dict[str, int]:
    """Write ``<suite>.jsonl`` for each implemented suite; return case counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name in suites if suites is not None else SUITES:
        try:
            suite = load_suite(name)
        except ConfigError:
            continue
        cases = suite.generate(suite.SEED)
        ids = [c.id for c in cases]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"suite {name!r} generated duplicate case ids")
        text = "".join(encode_line(c) + "\n" for c in cases)
        (out_dir / f"{name}.jsonl").write_text(text, encoding="utf-8")
        counts[name] = len(cases)
    return counts
