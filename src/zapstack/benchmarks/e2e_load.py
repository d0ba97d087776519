"""One load-generator process of the end-to-end row: submit for a fixed window, report.

``python -m zapstack.benchmarks.e2e_load --genesis G --first-user F --users U
--rate R --start-at T0 --measure-at T1 --stop-at T2 --out FILE`` runs one
:class:`~zapstack.devnet.loadgen.LoadGenerator` over devnet users ``F..F+U-1``
(a range no other process of the run uses, so every user starts at nonce 0):
it signs up to ``--presign`` frames per user ahead (until 10 s before ``T0``;
the rest are signed as they are sent; with ``--handshake`` all of them), then
dials every validator (signing first: it blocks the event loop, and a dialed
connection left unserviced past the QUIC idle timeout would be dead); with
``--handshake`` it then prints ``ready`` and reads ``T0 T1 T2`` from stdin, so that the
caller sets the window only once every load process is up and signed -- on a
busy box that takes seconds, and signing inside the window would take the
validators' cores), waits for ``T0``,
submits about ``R`` tx/s until ``T2`` (times are ``time.monotonic()``,
which every process on the box shares), and writes one JSON object to ``FILE``:

* ``window`` -- submits started, admitted, failed and rejected by answer code
  between ``T1`` and ``T2`` (the steady window; ``T0..T1`` is the warm-up);
* ``total`` -- the same over ``T0..T2``;
* ``sent`` -- ``[tx id hex, first send time]`` for every tx it submitted;
* ``admitted`` -- ``[tx id hex, start of the admitted submit]`` for every tx
  a validator admitted (a tx pushed back and resubmitted counts from the
  submit that got in).

:mod:`.e2e` starts as many of these as the offered rate needs (a single
Python process cannot both sign and submit thousands of txs per second).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zapstack.devnet.loadgen import LoadGenerator, LoadStats
from zapstack.errors import ZapError
from zapstack.node.genesis import devnet_user, load_genesis
from zapstack.transport.qh3_adapter import new_event_loop
from zapstack.zap.frames import parse_tx

__all__ = ["DIAL_MARGIN_S", "DIAL_S", "PRESIGN_S", "main", "release", "send_times", "snapshot"]

DIAL_S = 60.0
"""With ``--handshake``: most seconds spent dialing the validators before saying ready."""
PRESIGN_S = 60.0
"""With ``--handshake``: most seconds spent signing ahead before saying ready."""
DIAL_MARGIN_S = 10.0
"""Without ``--handshake``: signing ahead stops this many seconds before ``T0``, to dial."""


def snapshot(stats: LoadStats) -> dict[str, Any]:
    """The counters of ``stats`` as a plain dict (rejections copied)."""
    return {
        "sent": stats.sent,
        "admitted": stats.admitted,
        "failed": stats.failed,
        "rejected": dict(stats.rejected),
    }


async def release(children: Sequence[asyncio.subprocess.Process]) -> float:
    """The caller's side of ``--handshake``: wait until every load process says ``ready``
    (started, dialed and signed ahead: on a busy box that takes seconds), then return
    ``T0``, half a second on.  RuntimeError if one does not start."""
    for child in children:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), DIAL_S + PRESIGN_S + 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"a load process did not start (said {line!r}): see its log")
    return time.monotonic() + 0.5


async def send_times(
    children: Sequence[asyncio.subprocess.Process], t0: float, t1: float, t2: float
) -> None:
    """Give every load process its ``T0 T1 T2`` (after :func:`release`)."""
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{t0!r} {t1!r} {t2!r}\n".encode())
        await child.stdin.drain()
        child.stdin.close()


def _diff(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    rejected = {
        code: n - before["rejected"].get(code, 0)
        for code, n in after["rejected"].items()
        if n - before["rejected"].get(code, 0)
    }
    out = {k: after[k] - before[k] for k in ("sent", "admitted", "failed")}
    return out | {"rejected": rejected}


async def _sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.monotonic()))


async def _handshake(args: argparse.Namespace) -> None:
    """Say ``ready`` on stdout (dialed), then read ``T0 T1 T2`` from stdin into ``args``."""
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    try:
        args.start_at, args.measure_at, args.stop_at = (float(x) for x in line.split())
    except ValueError:
        raise SystemExit(f"e2e_load: expected 'T0 T1 T2' on stdin, got {line!r}") from None


async def _drive(args: argparse.Namespace) -> dict[str, Any]:
    g = load_genesis(args.genesis)
    seed = bytes.fromhex(g.raw.get("devnet_seed", ""))
    users = [devnet_user(seed, i) for i in range(args.first_user, args.first_user + args.users)]
    load = LoadGenerator(
        g,
        signers=users,
        rate=args.rate,
        seed=args.first_user + 1,
        credit_share=args.credit_share,
    )
    try:
        # sign ahead (the box's cores belong to the validators once the load starts):
        # with the handshake all of it before saying ready (bounded), else until T0.
        # Signing blocks this loop, so it comes before the dial: a connection left
        # unserviced past the QUIC idle timeout (30 s; 4 x 157,500 frames took longer
        # on a busy box) is dead by the time the load starts.
        until = time.monotonic() + PRESIGN_S if args.handshake else args.start_at - DIAL_MARGIN_S
        presigned = load.presign(args.presign, until, time.monotonic)
        print(f"presigned {presigned} frames", file=sys.stderr, flush=True)
        dial_until = time.monotonic() + DIAL_S if args.handshake else args.start_at
        while len(load.peers) < len(g.addresses) and time.monotonic() < dial_until:
            await load.connect()
            if len(load.peers) < len(g.addresses):
                await asyncio.sleep(0.2)
        if args.handshake:
            await _handshake(args)
        await _sleep_until(args.start_at)
        begin = snapshot(load.stats)
        stop = asyncio.Event()
        task = asyncio.create_task(load.run(stop))
        await _sleep_until(args.measure_at)
        mid = snapshot(load.stats)
        await _sleep_until(args.stop_at)
        end = snapshot(load.stats)
        stop.set()
        with contextlib.suppress(TimeoutError):  # sends still hanging: answers not needed
            await asyncio.wait_for(task, 15)
    finally:
        # the report matters more than a clean close (a busy box can take > 5 s)
        with contextlib.suppress(TimeoutError, ZapError, OSError):
            await load.close()

    def ids(times: dict[bytes, float]) -> list[list[Any]]:
        return [
            [parse_tx(frame, verify_signatures=False).tx_id.hex(), t] for frame, t in times.items()
        ]

    return {
        "window": _diff(end, mid),
        "total": _diff(end, begin),
        "peers": len(load.peers),
        "presigned": presigned,
        "sent": ids(load.sent_at),
        "admitted": ids(load.admitted_at),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one load process (see the module docstring); 0 when its report is written."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--genesis", type=Path, required=True)
    ap.add_argument("--first-user", type=int, required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--start-at", type=float, default=0.0)
    ap.add_argument("--measure-at", type=float, default=0.0)
    ap.add_argument("--stop-at", type=float, default=0.0)
    ap.add_argument(
        "--handshake",
        action="store_true",
        help="print 'ready' once dialed, then read 'T0 T1 T2' from stdin (the times above)",
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--presign", type=int, default=0, help="frames per user signed ahead")
    ap.add_argument(
        "--credit-share", type=int, default=1, help="load processes sharing the validators"
    )
    args = ap.parse_args(argv)
    if not args.handshake and not 0 < args.start_at <= args.measure_at <= args.stop_at:
        ap.error("give --start-at <= --measure-at <= --stop-at, or --handshake")
    # uvloop, as the node runs: a client on asyncio's pure-Python loop spends
    # the box's cores on loop overhead the validators need (its ``loop.time()``
    # is the same monotonic clock, read at the start of each loop iteration)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        report = runner.run(_drive(args))
    args.out.write_text(json.dumps(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
