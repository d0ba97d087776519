"""Cross-implementation conformance: JSONL vector suites, generator and runner.

See ``docs/formats/vectors.md`` for the common envelope.  Each suite lives in
its own layer (``SUITES`` maps a suite name to the module that implements it)
and exposes ``NAME``, ``generate(seed) -> list[Case]`` and
``run_case(case) -> dict`` (the actual output, compared to ``case.expected``).
"""

from zapstack.conformance.envelope import Case, CaseResult, decode_line, encode_line
from zapstack.conformance.registry import SUITES, load_suite
from zapstack.conformance.runner import SuiteReport, generate_all, run_files

__all__ = [
    "SUITES",
    "Case",
    "CaseResult",
    "SuiteReport",
    "decode_line",
    "encode_line",
    "generate_all",
    "load_suite",
    "run_files",
]
