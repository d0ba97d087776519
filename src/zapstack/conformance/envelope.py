"""The common JSONL envelope of every vector suite (``docs/formats/vectors.md``).

One line = one case: ``{"suite": str, "id": str, "input": {...}, "expected": {...}}``.
Bytes inside ``input``/``expected`` are lowercase hex strings.  Lines are
encoded with sorted keys and no insignificant whitespace so that a generator
run is byte-reproducible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from zapstack.errors import ConfigError

__all__ = ["Case", "CaseRejected", "CaseResult", "decode_line", "encode_line"]


@dataclass(frozen=True, slots=True)
class Case:
    """One conformance case."""

    suite: str
    """Suite name; selects the implementing module."""
    id: str
    """Case id, unique within its suite."""
    input: dict[str, Any]
    """Suite-specific input (see the suite's format doc)."""
    expected: dict[str, Any]
    """The output every conformant implementation must reproduce exactly."""


class CaseRejected(ConfigError):
    """A suite refuses a case's input with a documented error code.

    The runner turns it into the actual output ``{"error": error}``, which is
    compared with ``expected`` like any other output (``docs/formats/vectors.md``).
    """

    def __init__(self, error: str, detail: str = "") -> None:
        super().__init__(f"{error}: {detail}" if detail else error)
        self.error = error
        """The documented error code, e.g. ``BAD_INPUT`` or ``RULE_2``."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of running one case."""

    suite: str
    id: str
    passed: bool
    detail: str
    """Empty when passed; otherwise what differed."""


def encode_line(case: Case) -> str:
    """Canonical JSON text of ``case`` (no trailing newline)."""
    obj = {"suite": case.suite, "id": case.id, "input": case.input, "expected": case.expected}
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def decode_line(line: str) -> Case:
    """Parse one JSONL line into a :class:`Case`; raise :class:`ConfigError` if malformed."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"vector line is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ConfigError("vector line is not a JSON object")
    for key, kind in (("suite", str), ("id", str), ("input", dict), ("expected", dict)):
        if not isinstance(obj.get(key), kind):
            raise ConfigError(f"vector line: field {key!r} missing or not a {kind.__name__}")
    return Case(obj["suite"], obj["id"], obj["input"], obj["expected"])
