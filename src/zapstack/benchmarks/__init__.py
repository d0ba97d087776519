"""LP-0202's performance table, measured: each row pipelined vs serial in one run.

One module per row, each with ``run(...) -> RowResult`` (pipelined figure,
serial baseline, ratio, units, native limit where one exists, notes):
:mod:`.txadmit` (tx admit), :mod:`.verify` (block verify), :mod:`.consensus`
(consensus round, 4 legs), :mod:`.speculation` (speculative execution),
:mod:`.backup` (state backup stream, with its stream format in
:mod:`.backupstream`), :mod:`.statebench` (state commit incl. root, incremental
blocks, bulk load and state sync next to raw LMDB), and the end-to-end devnet (:mod:`.e2e`: a
4-validator devnet at 1x, 3x and 10x its measured capacity next to its
verify-bound ceiling; :mod:`.e2e_load` its load processes, :mod:`.e2e_watch`
what it reads off the nodes, :mod:`.e2e_stats` its arithmetic, :mod:`.e2e_row`
its row and ``bench/bench_e2e.py``).  :mod:`.table` runs them all, prints the table, and
writes ``bench/out/perf.json`` and ``bench/out/perf.png``
(``zap bench [--quick]``, ``bench/bench_table.py``, ``make bench``).

Layering: above every pipeline (imports mempool, verify, consensus, zapdb,
bootstrap) and, for the end-to-end row only, the devnet tools (``devnet``, its
one same-rank import); nothing imports it but the CLI.  Runs in the calling thread;
rows start and stop their own pools and temporary stores.
"""

from zapstack.benchmarks.result import RowResult, cores
from zapstack.benchmarks.table import FULL, QUICK, ROWS, Sizes, main, run_table

__all__ = ["FULL", "QUICK", "ROWS", "RowResult", "Sizes", "cores", "main", "run_table"]
