"""Row "Tx admit over QUIC": the same admit pipeline behind a real QUIC endpoint.

This row calls ``bench/bench_txadmit_quic.py`` (a script of the repository,
not part of the installed package): a receiver process running
:class:`zapstack.node.adapters.mempool_quic.TxAdmitServer` on qh3 + uvloop and a sender
process, on loopback, timed by the sender up to the last admit receipt.

* **pipelined**: ``n`` signed Ed25519 call txs over 4 connections x 64
  concurrent unidirectional streams;
* **serial**: one connection, one stream at a time, waiting for each admit
  receipt (the receiver verifies inline), over the first ``serial_n`` txs --
  a rate, so the sizes need not match;
* no native limit here (the in-memory row carries the verify limit).

Where the script is absent (an installed package without the repository),
:func:`run` returns None and the table says the row was skipped.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from types import ModuleType

from zapstack.benchmarks.result import RowResult, cores, rate_ratio

__all__ = ["SCRIPT", "load", "run"]

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "bench_txadmit_quic.py"
"""Where the repository keeps the QUIC admission bench."""


def load() -> ModuleType | None:
    """Import the bench script as ``bench_txadmit_quic`` (None if not in a checkout).

    Its directory goes on ``sys.path`` so the bench's ``spawn`` children can
    import the same module by name.
    """
    if not SCRIPT.is_file():
        return None
    folder = str(SCRIPT.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    return importlib.import_module(SCRIPT.stem)


def run(n: int = 10_000, *, serial_n: int = 2000) -> RowResult | None:
    """Run the pipelined and serial QUIC phases; None if the script is absent."""
    q = load()
    if q is None:
        return None
    start = time.perf_counter()
    txs = q.make_txs(n)
    pipe = q.run_phase_retry(q.Phase("pipelined", txs, q.CONNS))
    serial = q.run_phase_retry(q.Phase("serial", txs[: min(n, serial_n)], 1, serial=True))
    p_rate, s_rate = float(pipe["rate"]), float(serial["rate"])
    retried = bool(pipe.get("retried") or serial.get("retried"))
    return RowResult(
        key="tx_admit_quic",
        op=f"Tx admit over QUIC ({n:,} txs)",
        serial_label=f"1 stream at a time, wait for each admit receipt ({min(n, serial_n):,} txs)",
        pipelined_label=f"{q.CONNS} peers x {q.STREAMS} streams, verify on 2 threads",
        serial=s_rate,
        pipelined=p_rate,
        unit="tx/s",
        higher_is_better=True,
        ratio=rate_ratio(p_rate, s_rate),
        spec_win="~50x",
        notes=(
            f"real QUIC (qh3) on loopback between 2 processes on {cores()} cores, no added RTT; "
            "bench/bench_txadmit_quic.py also measures an emulated RTT"
            + ("; a phase timed out once and was retried" if retried else "")
        ),
        extras={
            "receiver_cpu_us_per_tx_pipelined": 1e6 * float(pipe["rx_cpu"]) / n,
            "peak_in_flight_pipelined": float(pipe["peak_in_flight"]),
        },
        seconds=time.perf_counter() - start,
    )
