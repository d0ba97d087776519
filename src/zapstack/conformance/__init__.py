"""Cross-implementation conformance: JSONL vector suites, generator and runner.

See ``docs/formats/vectors.md`` for the common envelope.  Every suite is a
module of this package named after the suite, importing the layer it checks
(downward): :mod:`.frames` (zap), :mod:`.mvcc_unwind` (zapdb),
:mod:`.stream_reset` (transport, real QUIC), :mod:`.dht_refetch` (dht),
:mod:`.cert_tiers` (consensus).  ``SUITES`` maps a suite name to its module;
each exposes ``NAME``, ``SEED``, ``generate(seed) -> list[Case]`` and
``run_case(case) -> dict`` (the actual output, compared to ``case.expected``;
raising :class:`CaseRejected` to refuse an input with a documented error code).
"""

from zapstack.conformance.envelope import Case, CaseRejected, CaseResult, decode_line, encode_line
from zapstack.conformance.registry import SUITES, load_suite
from zapstack.conformance.runner import SuiteReport, generate_all, run_files

__all__ = [
    "SUITES",
    "Case",
    "CaseRejected",
    "CaseResult",
    "SuiteReport",
    "decode_line",
    "encode_line",
    "generate_all",
    "load_suite",
    "run_files",
]
