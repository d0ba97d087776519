"""LP-0202 performance table: every row pipelined vs serial in one run.

Run: ``.venv/bin/python bench/bench_table.py [--quick] [--validators N] [--only KEY]``
(same as ``zap bench``).  Prints the table with this box's core count and
writes ``bench/out/perf.json`` and ``bench/out/perf.png``.  The rows live in
``zapstack.benchmarks``.
"""

from __future__ import annotations

import sys

from zapstack.benchmarks.table import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
