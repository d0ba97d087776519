"""End-to-end devnet benchmark: 4 validators on 127.0.0.1 at 1x, 3x and 10x capacity.

Run: ``.venv/bin/python bench/bench_e2e.py [--quick] [--out DIR]`` (``--quick``:
about two to three minutes; full: about five).  Deals a devnet, starts the validators as
``zap node`` processes (real QUIC), finds the capacity with a ramp of offered
loads, then offers 1x, 3x and 10x of it; prints per load offered / admitted /
rejected / finalized tx/s, p50 / p99 submit -> final, proposal -> PQ-fast and
-> PQ-heavy, the verify-bound ceiling measured in the same run, and whether the
validators agree; writes ``DIR/e2e.json``.  The same measurement is the
``e2e_devnet`` row of ``zap bench``.  Code: ``zapstack.benchmarks.e2e``.
"""

from __future__ import annotations

import sys

from zapstack.benchmarks.e2e_row import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
