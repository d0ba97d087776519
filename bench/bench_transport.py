"""Transport benchmark: stream open+send rate and MB/s between two processes.

Run: ``.venv/bin/python bench/bench_transport.py``.  A receiver process
listens on 127.0.0.1 (uvloop) and counts PROBE streams; the sender (this
process) opens streams and writes them.  The clock runs from the first open to
the moment the receiver reports that it has seen every stream end (FIN), so
the figure is end-to-end delivered work, not bytes queued.

* pipelined: the listener grants 64 concurrent uni streams (LP-0202 default);
* serial baseline: the listener grants 1, so QUIC itself forces one stream at a
  time (each open waits for the previous stream's credit to come back);
* the same workloads over qh3 (production) and aioquic (second stack).
"""

from __future__ import annotations

from zapstack.benchmarks.quicbulk import TIMEOUT, measure


def main() -> None:
    print("transport benchmark: two processes over 127.0.0.1 UDP, uvloop, end-to-end delivered")
    results: dict[str, float] = {}

    def row(label: str, stack: str, limit: int, streams: int, size: int) -> float:
        try:
            seconds, total = measure(stack, limit=limit, streams=streams, size=size)
        except (TimeoutError, AssertionError, EOFError) as exc:
            # reported, not hidden: a stalled transfer is a finding, and the other rows still run
            print(
                f"  {label:<44} did not complete within {TIMEOUT:.0f} s "
                f"({type(exc).__name__}: {exc})"
            )
            return float("nan")
        rate = streams / seconds
        mbps = total / seconds / 1e6
        print(
            f"  {label:<44} {streams:>6} streams x {size:>7} B  {seconds:7.3f} s  "
            f"{rate:9.0f} streams/s  {mbps:8.1f} MB/s"
        )
        results[label] = rate
        return rate

    print("open+send rate, 1 KiB streams:")
    piped = row("qh3, 64 concurrent streams (pipelined)", "qh3", 64, 6000, 1024)
    serial = row("qh3, 1 stream at a time (serial baseline)", "qh3", 1, 600, 1024)
    aio_piped = row("aioquic, 64 concurrent streams", "aioquic", 64, 3000, 1024)
    aio_serial = row("aioquic, 1 stream at a time", "aioquic", 1, 300, 1024)
    print(f"  ratio qh3 pipelined / serial:          {piped / serial:6.1f}x")
    print(f"  ratio aioquic pipelined / serial:      {aio_piped / aio_serial:6.1f}x")
    print(f"  ratio qh3 / aioquic (pipelined):       {piped / aio_piped:6.1f}x")
    print("bulk, 1 MiB streams:")
    bulk = row("qh3, 64 concurrent streams", "qh3", 64, 96, 1 << 20) * (1 << 20) / 1e6
    bulk1 = row("qh3, 1 stream at a time", "qh3", 1, 24, 1 << 20) * (1 << 20) / 1e6
    aio_bulk = row("aioquic, 64 concurrent streams", "aioquic", 64, 48, 1 << 20) * (1 << 20) / 1e6
    print(f"  ratio qh3 MB/s pipelined / serial:     {bulk / bulk1:6.2f}x")
    print(f"  ratio qh3 / aioquic MB/s:              {bulk / aio_bulk:6.2f}x")


if __name__ == "__main__":
    main()
