"""``zap soak``: a bounded soak of a real devnet -- load, a killed validator, a malicious peer.

What it does, in order:

1. Deals a devnet and starts N ``zap node`` processes
   (:class:`~zapstack.devnet.processes.ProcessCluster`), waits until every
   validator has finalized height 1, then for ``seconds``:

   * an honest load generator submits signed txs over QUIC to validators
     ``0..n-2`` (never to the one that gets killed, so no user's nonce sequence
     is broken by a dead target);
   * a :class:`~zapstack.devnet.malicious.MaliciousPeer` (a non-validator node id) connects to every
     validator and keeps sending malformed tx frames, consensus streams with a
     bad type byte and truncated consensus messages;
   * in each cycle (one per ~60 s, at least one) validator ``n-1`` is
     ``SIGKILL``\\ ed at a quarter of the cycle, its committed chain is read from
     its data dir while it is dead, and it is restarted at half the cycle; it
     must catch up with the others' height at restart time.

2. Stops the load and the malicious peer, stops every node (SIGTERM) and reads
   every data dir offline
   (:func:`~zapstack.devnet.soakcheck.final_checks`) to check, each a *violation*:

   * each node's ZapDB opens; its blocks ``1..head`` are all present, link by
     parent id, hash to their certs' block ids, and its state root equals the
     head block's certified post-state root;
   * every node holds the same block at every height up to the lowest head
     (so they agree on the state root at that common height);
   * each killed node's pre-kill chain is a prefix of its final chain (nothing
     committed was lost) and it caught up after each restart;
   * the chain advanced after the last restart, and the malicious peer's bad
     streams were stopped while the validators kept their links.

It prints a summary and :attr:`SoakResult.ok` is False on any violation.

The load, the malicious peer and the cycles run on one event loop
(``asyncio.run``); the validators are separate processes, stopped in a
``finally`` whatever happens, and the offline checks run only after they
stopped.  Every wait is bounded: ``seconds`` plus start-up, at most 45 s of
extra catch-up wait per cycle, and shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from zapstack.devnet.loadgen import LoadGenerator
from zapstack.devnet.malicious import MaliciousPeer
from zapstack.devnet.processes import ProcessCluster, free_port_base
from zapstack.devnet.soakcheck import Restart, SoakResult, final_checks, read_chain
from zapstack.errors import ZapError
from zapstack.node.genesis import Genesis, load_genesis, make_devnet

__all__ = ["SoakResult", "run_soak"]


def _status_of(cluster: ProcessCluster, i: int) -> dict[str, Any] | None:
    """Validator ``i``'s status, only if written by its current process."""
    st = cluster.status(i)
    proc = cluster.procs.get(i)
    if st is None or proc is None or st.get("pid") != proc.pid:
        return None
    return st


async def _wait(cluster: ProcessCluster, until: float, done: Any = None) -> bool:
    """Sleep until ``until`` (monotonic) or until ``done()`` is true; returns done()."""
    while time.monotonic() < until:
        if done is not None and done():
            return True
        await asyncio.sleep(0.25)
    return bool(done is not None and done())


async def _cycle(
    cluster: ProcessCluster,
    g: Genesis,
    result: SoakResult,
    start: float,
    t0: float,
    span: float,
    console: Console,
) -> None:
    victim = len(cluster.homes) - 1

    def victim_height(at_least: int) -> bool:
        st = _status_of(cluster, victim)
        return st is not None and int(st["height"]) >= at_least

    await _wait(cluster, t0 + span * 0.25)
    await _wait(cluster, t0 + span * 0.4, lambda: victim_height(2))
    cluster.kill(victim, signal.SIGKILL)
    killed = time.monotonic() - start
    pre = await asyncio.to_thread(read_chain, cluster.homes[victim], g)
    restart = Restart(victim, round(killed, 1), pre)
    result.restarts.append(restart)
    console.print(f"[{killed:5.1f}s] SIGKILL validator {victim} at committed height {pre.height}")
    await _wait(cluster, t0 + span * 0.5)
    others = [h for i, h in cluster.heights().items() if i != victim]
    restart.target = max(others, default=0)
    cluster.start(victim)
    restarted = time.monotonic()
    console.print(
        f"[{restarted - start:5.1f}s] restart validator {victim}; the others are at "
        f"height {restart.target}"
    )
    if await _wait(cluster, max(t0 + span, restarted + 45), lambda: victim_height(restart.target)):
        restart.caught_up_s = round(time.monotonic() - restarted, 1)
        console.print(
            f"[{time.monotonic() - start:5.1f}s] validator {victim} caught up to "
            f"{restart.target} in {restart.caught_up_s} s"
        )


async def _soak(
    cluster: ProcessCluster,
    g: Genesis,
    seconds: float,
    rate: float,
    result: SoakResult,
    console: Console,
    startup_timeout: float,
) -> None:
    n = len(cluster.homes)
    victim = n - 1
    up = await _wait(
        cluster,
        time.monotonic() + startup_timeout,
        lambda: all((st := _status_of(cluster, i)) and st["height"] >= 1 for i in range(n)),
    )
    if not up:
        result.violations.append(f"the devnet did not finalize height 1 in {startup_timeout} s")
        return
    load = LoadGenerator(g, rate=rate)
    await load.connect()
    load.peers.pop(victim, None)  # the victim's death must not break users' nonce order
    evil = MaliciousPeer(g)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(load.run(stop)), asyncio.create_task(evil.run(stop))]
    start = time.monotonic()
    console.print(f"devnet up; soaking {seconds:.0f} s (load {rate:.0f} tx/s, malicious peer)")
    try:
        statuses = await _cycles(cluster, g, seconds, result, start, console)
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=15)
        await evil.close()
        with contextlib.suppress(Exception):
            await load.close()
    result.seconds = round(time.monotonic() - start, 1)
    result.load = {"sent": load.stats.sent, "failed": load.stats.failed}
    result.malicious = evil.stats
    _check_links(statuses, n, result)


async def _cycles(
    cluster: ProcessCluster,
    g: Genesis,
    seconds: float,
    result: SoakResult,
    start: float,
    console: Console,
) -> dict[int, dict[str, Any] | None]:
    """Run the kill / restart cycles (one per ~60 s, at least one) until ``seconds``
    have passed since ``start``; return every validator's status then."""
    cycles = max(1, int(seconds // 60))
    span = seconds / cycles
    for c in range(cycles):
        await _cycle(cluster, g, result, start, start + c * span, span, console)
    await _wait(cluster, start + seconds)
    return {i: _status_of(cluster, i) for i in range(len(cluster.homes))}


def _check_links(statuses: dict[int, dict[str, Any] | None], n: int, result: SoakResult) -> None:
    """Every validator runs at the end and kept its links; sum its rejects by stage."""
    for i, st in statuses.items():
        if st is None:
            result.violations.append(f"validator {i} is not running at the end")
            continue
        for stage, k in st["rejects"].items():
            result.rejects[stage] = result.rejects.get(stage, 0) + k
        missing = set(range(n)) - {i} - set(st["peers"])
        if missing:
            result.violations.append(f"validator {i} lost its links to {sorted(missing)}")


def run_soak(
    seconds: float = 300.0,
    n: int = 4,
    *,
    home: Path | None = None,
    rate: float = 60.0,
    console: Console | None = None,
    startup_timeout: float = 120.0,
) -> SoakResult:
    """Run the soak; see the module docstring.  Bounded: ``seconds`` plus start-up,
    at most 45 s of extra catch-up wait per cycle, and shutdown."""
    if n < 4:
        raise ZapError("the soak kills one validator: it needs n >= 4 to keep a 2/3 quorum")
    console = console or Console()
    home = home or Path(tempfile.mkdtemp(prefix="zap-soak-"))
    homes = make_devnet(home, n, base_port=free_port_base(n))
    g = load_genesis(home / "genesis.json")
    console.print(f"[bold]zap soak[/bold]: {n} validators, {seconds:.0f} s; data in {home}")
    cluster = ProcessCluster(homes)
    result = SoakResult()
    try:
        for i in range(n):
            cluster.start(i)
        asyncio.run(_soak(cluster, g, seconds, rate, result, console, startup_timeout))
    finally:
        cluster.stop()
    final_checks(cluster.homes, g, result)
    _summary(console, result, n)
    return result


def _summary(console: Console, r: SoakResult, n: int) -> None:
    table = Table(title="soak summary")
    table.add_column("what")
    table.add_column("value")
    table.add_row("soaked", f"{r.seconds} s, {n} validators")
    table.add_row("committed heads", ", ".join(f"{i}: {h}" for i, h in sorted(r.heights.items())))
    table.add_row(
        "agreement",
        f"same blocks 1..{r.common_height} on every validator; "
        f"state root there {r.common_root[:16] or '-'}",
    )
    table.add_row("txs finalized", str(r.txs_finalized))
    table.add_row("load", f"{r.load.get('sent', 0)} txs sent, {r.load.get('failed', 0)} failed")
    for k in r.restarts:
        table.add_row(
            f"validator {k.victim} SIGKILL at {k.killed_at_s} s",
            f"pre-kill height {k.pre_kill.height} kept; caught up to {k.target} "
            + (f"in {k.caught_up_s} s" if k.caught_up_s is not None else "[red]never[/red]"),
        )
    m = r.malicious
    table.add_row(
        "malicious peer",
        ", ".join(
            f"{kind}: {m.sent[kind]} sent, {m.stopped.get(kind, 0)} stopped, "
            f"{m.cut_off.get(kind, 0)} cut off"
            for kind in m.sent
        )
        or "-",
    )
    table.add_row(
        "tx streams rejected by stage", ", ".join(f"{k}: {v}" for k, v in r.rejects.items())
    )
    console.print(table)
    for v in r.violations:
        console.print(f"[red]violation:[/red] {v}")
    verdict = "[green]OK[/green]" if r.ok else f"[red]FAILED ({len(r.violations)} violations)[/red]"
    console.print(f"soak of {n} validators: {verdict}")
