"""``zap devnet``: N validator processes on loopback, load, a light client, a live view.

What it does, in order:

1. Deals a devnet (``genesis.make_devnet``) into a home folder and starts N
   ``zap node`` processes (each its own ZapDB, QUIC listener, metrics port),
   all told to halt after ``blocks`` heights.
2. Starts a load generator submitting signed txs over QUIC (one TX_SUBMIT
   stream per tx, answered by the node; every ``malformed_every``-th stream
   carries a malformed frame, rejected at its stage) and a rich live view:
   heights, per-leg arrival and tier per height, mempool sizes, admits/s,
   rejects by stage.
3. When every validator has halted at the target height it checks that they
   agree on the block id and the state root there, has a light client
   re-fetch finalized blocks through the DHT (certs over HEADER_RANGE, block
   bytes as verified 64 KiB chunks from up to k providers by block id) and
   check ``sha256(bytes) == block id`` and each cert, prints a summary, stops
   the nodes and returns 0 on agreement.

The load generator, the live view and the light client share one event loop
(``asyncio.run``), polling the validators' ``status.json`` files every 0.25 s;
the validators are separate processes (:mod:`zapstack.devnet.processes`),
SIGTERMed (then SIGKILLed after 10 s) in a ``finally`` whatever happens.  The
live view itself is :mod:`zapstack.devnet.view`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from zapstack.devnet.loadgen import LoadGenerator
from zapstack.devnet.processes import (
    free_port_base,
    log_alerts,
    read_status,
    spawn_node,
    stop_processes,
)
from zapstack.devnet.view import AdmitRates, Statuses, render
from zapstack.lightclient import Fetched, LightClient
from zapstack.node.genesis import DEFAULT_POLICY, Genesis, load_genesis, make_devnet

__all__ = ["DevnetResult", "devnet_policy", "run_devnet"]


@dataclass(slots=True)
class DevnetResult:
    """Outcome of one devnet run."""

    agreed: bool = False
    height: int = 0
    roots: dict[int, str] = field(default_factory=dict)
    heads: dict[int, str] = field(default_factory=dict)
    txs_finalized: int = 0
    elapsed_s: float = 0.0
    light_client_ok: int = 0
    light_client_failed: int = 0
    light_client_bytes: int = 0
    light_client_chunks: int = 0
    light_client_providers: int = 0
    """Most DHT providers one block was pulled from."""
    load: dict[str, Any] = field(default_factory=dict)
    rejects: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)
    log_alerts: dict[int, list[str]] = field(default_factory=dict)
    """Per validator, its ``node.log`` lines at WARNING or above (none on a good run)."""

    @property
    def ok(self) -> bool:
        return self.agreed and self.light_client_failed == 0 and self.light_client_ok > 0


def devnet_policy(n: int) -> dict[str, Any]:
    """The devnet CertPolicy for ``n`` validator processes sharing this machine.

    Every validator process verifies, executes and signs every block on the same
    few cores, so the round deadline (TimeoutMs) grows with ``n``: 3 s up to 15
    validators, 200 ms per validator beyond (8 s at 40).  A real chain sets it
    from its validators' hardware; rule 3 of the policy still holds.
    """
    policy = dict(DEFAULT_POLICY)
    policy["TimeoutMs"] = max(int(DEFAULT_POLICY["TimeoutMs"]), 200 * n)
    return policy


async def _drive(
    homes: list[Path],
    genesis: Genesis,
    blocks: int,
    rate: float,
    malformed_every: int,
    timeout_s: float,
    console: Console,
    live: bool,
    alive: Callable[[], bool],
) -> DevnetResult:
    """Load the running validators until they all halt, then check and re-fetch."""
    started = time.monotonic()
    load = LoadGenerator(genesis, rate=rate, malformed_every=malformed_every)
    deadline = started + timeout_s
    await _connect(load, len(homes), deadline, alive)
    stop_load = asyncio.Event()
    load_task = asyncio.create_task(load.run(stop_load))
    statuses = await _watch(
        homes, blocks, load, stop_load, started, deadline, console if live else None, alive
    )
    stop_load.set()
    if not alive():
        console.print("[red]a validator process exited early[/red]: see node-*/stdout.txt")
    await asyncio.wait_for(load_task, 10)
    result = DevnetResult(elapsed_s=time.monotonic() - started)
    result.load = {
        "sent": load.stats.sent,
        "malformed": load.stats.malformed,
        "failed": load.stats.failed,
        "admitted": load.stats.admitted,
        "rejected": dict(load.stats.rejected),
    }
    _agreement(result, statuses, len(homes))
    client = LightClient(genesis)
    try:
        _tally_refetch(result, await client.refetch_range(1, result.height))
    finally:
        await client.close()
        await load.close()
    return result


async def _connect(load: LoadGenerator, n: int, deadline: float, alive: Callable[[], bool]) -> None:
    """Dial the validators until all ``n`` answer, one dies, or ``deadline`` passes."""
    while time.monotonic() < deadline and len(load.peers) < n and alive():
        await load.connect()
        if len(load.peers) < n:
            await asyncio.sleep(0.5)


async def _watch(
    homes: list[Path],
    blocks: int,
    load: LoadGenerator,
    stop_load: asyncio.Event,
    started: float,
    deadline: float,
    console: Console | None,
    alive: Callable[[], bool],
) -> Statuses:
    """Poll every status.json (drawing the live view on ``console`` if given) until
    every validator halted, one died, or ``deadline``; return the last poll.

    The load stops once a validator is 2 heights short of ``blocks``, so the last
    blocks drain the mempool."""
    statuses: Statuses = {}
    rates = AdmitRates(started)
    live = console is not None
    ctx = Live(console=console, refresh_per_second=4) if live else contextlib.nullcontext()
    with ctx as view:
        while time.monotonic() < deadline and alive():
            statuses = {i: read_status(h) for i, h in enumerate(homes)}
            rates.update(statuses, time.monotonic())
            if view is not None:
                view.update(render(statuses, load, started, rates.rates))
            done = [s for s in statuses.values() if s is not None and s.get("halted")]
            if len(done) == len(homes):
                break
            if any(s is not None and s["height"] >= blocks - 2 for s in statuses.values()):
                stop_load.set()  # let the last blocks drain the mempool
            await asyncio.sleep(0.25)
    return statuses


def _agreement(result: DevnetResult, statuses: Statuses, n: int) -> None:
    """Record heights, roots, heads and rejects; agreed if all ``n`` halted on one
    block id and one state root."""
    final = {i: s for i, s in statuses.items() if s is not None}
    result.roots = {i: s["state_root"] for i, s in final.items()}
    result.heads = {i: s["head"] for i, s in final.items()}
    result.height = min((s["height"] for s in final.values()), default=0)
    result.agreed = (
        len(final) == n
        and all(s.get("halted") for s in final.values())
        and len(set(result.roots.values())) == 1
        and len(set(result.heads.values())) == 1
    )
    for s in final.values():
        for stage, k in s["rejects"].items():
            result.rejects[stage] = result.rejects.get(stage, 0) + k


def _tally_refetch(result: DevnetResult, fetched: list[Fetched]) -> None:
    """Record what the light client's re-fetch of heights 1..height yielded."""
    result.light_client_ok = sum(1 for f in fetched if f.ok)
    result.light_client_failed = sum(1 for f in fetched if not f.ok)
    result.txs_finalized = sum(f.txs for f in fetched if f.ok)
    result.light_client_bytes = sum(f.size for f in fetched if f.ok)
    result.light_client_chunks = sum(f.chunks for f in fetched if f.ok)
    result.light_client_providers = max((f.providers for f in fetched), default=0)
    for f in fetched:
        if f.ok:
            result.tiers[f.tier] = result.tiers.get(f.tier, 0) + 1


def run_devnet(
    n: int = 4,
    blocks: int = 20,
    *,
    home: Path | None = None,
    rate: float = 150.0,
    malformed_every: int = 40,
    timeout_s: float = 300.0,
    live: bool = True,
    console: Console | None = None,
    policy: dict[str, Any] | None = None,
) -> DevnetResult:
    """Run a devnet to ``blocks`` heights; see the module docstring."""
    console = console or Console()
    home = home or Path(tempfile.mkdtemp(prefix="zap-devnet-"))
    base = free_port_base(n)
    homes = make_devnet(home, n, base_port=base, policy=policy or devnet_policy(n))
    genesis = load_genesis(home / "genesis.json")
    console.print(
        f"[bold]zap devnet[/bold]: {n} validators on 127.0.0.1:{base}..{base + n - 1}, "
        f"policy {genesis.policy.mode.value} (fallback "
        f"{genesis.policy.fallback.value if genesis.policy.fallback else 'none'}), "
        f"halting at height {blocks}; data in {home}"
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, h in enumerate(homes):
            procs.append(spawn_node(h, http_port=base + 1000 + i, halt_height=blocks))

        def alive() -> bool:
            return all(p.poll() is None for p in procs)

        result = asyncio.run(
            _drive(homes, genesis, blocks, rate, malformed_every, timeout_s, console, live, alive)
        )
    finally:
        _stop(procs, homes, console)
    result.log_alerts = {i: log_alerts(h) for i, h in enumerate(homes)}
    _summary(console, result, n)
    return result


def _stop(procs: list[subprocess.Popen[bytes]], homes: list[Path], console: Console) -> None:
    """Say why any node died early, SIGTERM the others, SIGKILL after 10 s."""
    for i, p in enumerate(procs):
        if p.poll() is not None:  # died before we stopped it: say why
            lines = (homes[i] / "stdout.txt").read_text(errors="replace").strip().splitlines()
            console.print(
                f"[red]node {i} exited with {p.returncode}[/red]: {lines[-1] if lines else ''}"
            )
    stop_processes(procs)


def _summary(console: Console, r: DevnetResult, n: int) -> None:
    table = Table(title="devnet summary")
    table.add_column("what")
    table.add_column("value")
    table.add_row("validators agree at height", f"{r.height}: {'yes' if r.agreed else 'NO'}")
    table.add_row("state root (all)", ", ".join(sorted({v[:16] for v in r.roots.values()})))
    table.add_row("head block id (all)", ", ".join(sorted({v[:16] for v in r.heads.values()})))
    table.add_row("txs finalized", str(r.txs_finalized))
    table.add_row(
        "throughput",
        f"{r.txs_finalized / max(r.elapsed_s, 1e-9):.1f} tx/s over {r.elapsed_s:.1f} s",
    )
    table.add_row("load generator", json.dumps(r.load))
    table.add_row("tx streams rejected by stage", json.dumps(r.rejects))
    table.add_row("final cert tier per block", json.dumps(r.tiers))
    table.add_row(
        "light client re-fetch (DHT)",
        f"{r.light_client_ok} blocks hash to their ids, {r.light_client_failed} failed; "
        f"{r.light_client_bytes} bytes in {r.light_client_chunks} verified 64 KiB chunks "
        f"from {r.light_client_providers} providers per block",
    )
    table.add_row("node log ERROR / WARNING lines", _alerts_row(r.log_alerts))
    console.print(table)
    verdict = "[green]OK[/green]" if r.ok else "[red]FAILED[/red]"
    console.print(f"devnet of {n} validators: {verdict}")


def _alerts_row(alerts: dict[int, list[str]]) -> str:
    """``0``, or the count per node and the first such line."""
    total = sum(len(lines) for lines in alerts.values())
    if not total:
        return "0"
    per_node = {i: len(lines) for i, lines in alerts.items()}
    first = next(lines[0] for lines in alerts.values() if lines)
    return f"{total} (per node {json.dumps(per_node)}; first: {first[:200]})"
