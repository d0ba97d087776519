"""Run JSONL vector files and generate them from seeds."""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from zapstack.conformance.envelope import Case, CaseResult, decode_line, encode_line
from zapstack.conformance.registry import SUITES, load_suite
from zapstack.errors import ConfigError

__all__ = ["SuiteReport", "generate_all", "run_case", "run_files"]


@dataclass(slots=True)
class SuiteReport:
    """Per-suite tally."""

    suite: str
    passed: int = 0
    failed: int = 0
    failures: list[CaseResult] = field(default_factory=list)


def run_case(case: Case) -> CaseResult:
    """Run one case; any exception is a failure with its traceback as detail."""
    try:
        suite = load_suite(case.suite)
        actual = suite.run_case(case)
    except Exception:  # a conformance runner reports, it never crashes
        return CaseResult(case.suite, case.id, False, traceback.format_exc(limit=4))
    if actual == case.expected:
        return CaseResult(case.suite, case.id, True, "")
    return CaseResult(
        case.suite, case.id, False, f"expected {case.expected!r}\n     got {actual!r}"
    )


def iter_cases(paths: Iterable[Path]) -> Iterable[Case]:
    """Decode every non-empty line of every file."""
    for path in paths:
        with path.open("r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield decode_line(line)
                except ConfigError as exc:
                    raise ConfigError(f"{path}:{lineno}: {exc}") from exc


def run_files(paths: Iterable[Path]) -> dict[str, SuiteReport]:
    """Run every case in ``paths``; return reports keyed by suite name."""
    reports: dict[str, SuiteReport] = {}
    for case in iter_cases(paths):
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
        text = "".join(encode_line(c) + "\n" for c in cases)
        (out_dir / f"{name}.jsonl").write_text(text, encoding="utf-8")
        counts[name] = len(cases)
    return counts
