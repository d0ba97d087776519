"""``zap devnet``: N validator processes on loopback, load, a light client, a live view.

What it does, in order:

1. Deals a devnet (``genesis.make_devnet``) into a home folder and starts N
   ``zap node`` processes (each its own ZapDB, QUIC listener, metrics port),
   all told to halt after ``blocks`` heights.
2. Starts a load generator submitting signed txs over QUIC (one uni stream per
   tx; every ``malformed_every``-th stream carries a malformed frame, rejected
   at its stage) and a rich live view: heights, per-leg arrival and tier per
   height, mempool sizes, admits/s, rejects by stage.
3. When every validator has halted at the target height it checks that they
   agree on the block id and the state root there, has a light client
   re-fetch finalized blocks through the DHT (certs over HEADER_RANGE, block
   bytes as verified 64 KiB chunks from up to k providers by block id) and
   check ``sha256(bytes) == block id`` and each cert, prints a summary, stops
   the nodes and returns 0 on agreement.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from zapstack.node.genesis import DEFAULT_POLICY, Genesis, load_genesis, make_devnet
from zapstack.node.lightclient import LightClient
from zapstack.node.loadgen import LoadGenerator

__all__ = ["DevnetResult", "free_port_base", "read_status", "run_devnet", "spawn_node"]


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

    @property
    def ok(self) -> bool:
        return self.agreed and self.light_client_failed == 0 and self.light_client_ok > 0


def _ephemeral_low() -> int:
    """The kernel's lowest ephemeral port (outgoing sockets are bound from there up)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_base(n: int, start: int = 20000) -> int:
    """A base port with ``n`` free UDP ports and ``n`` free TCP ports 1000 above.

    Every port stays below the kernel's ephemeral range: the validators' own
    outgoing QUIC sockets take ephemeral ports while the others start, and a
    listener port inside that range can be taken before its node binds it.
    """
    stop = _ephemeral_low() - 1000 - n
    span = stop - start
    if span <= 2 * n:
        raise OSError("no port range below the ephemeral range")
    offset = (os.getpid() * 37) % span
    for k in range(0, span, 2 * n + 7):
        candidate = start + (offset + k) % (span - n)
        socks: list[socket.socket] = []
        try:
            for p in range(candidate, candidate + n):
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(u)
                u.bind(("127.0.0.1", p))
                t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(t)
                t.bind(("127.0.0.1", p + 1000))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return candidate
    raise OSError("no free port range on 127.0.0.1")


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


def read_status(home: Path) -> dict[str, Any] | None:
    """A node's status.json, or None while absent / being replaced."""
    try:
        data = json.loads((home / "status.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _view(
    statuses: dict[int, dict[str, Any] | None],
    load: LoadGenerator,
    started: float,
    rates: dict[int, float],
) -> Group:
    nodes = Table(title="validators", expand=False)
    cols = (
        "node",
        "height",
        "round",
        "peers",
        "mempool",
        "admitted",
        "admits/s",
        "rejects by stage",
        "root",
    )
    for col in cols:
        nodes.add_column(col)
    records: dict[int, dict[str, Any]] = {}
    for i, st in sorted(statuses.items()):
        if st is None:
            nodes.add_row(str(i), "starting", "", "", "", "", "", "", "")
            continue
        rejects = " ".join(f"{k}:{v}" for k, v in sorted(st["rejects"].items())) or "-"
        state = "halted" if st.get("halted") else str(st["round"])
        nodes.add_row(
            str(i),
            str(st["height"]),
            state,
            str(len(st["peers"])),
            str(st["mempool"]),
            str(st["admitted"]),
            f"{rates.get(i, 0.0):.0f}",
            rejects,
            st["state_root"][:12],
        )
        for rec in st["recent"]:
            if rec["legs_ms"] or rec["height"] not in records:
                records[rec["height"]] = rec
    heights = Table(title="finalized heights: per-leg arrival after round start, tier")
    for col in (
        "height",
        "proposer",
        "txs",
        "BLS",
        "Pulsar",
        "Corona",
        "Magnetar",
        "final at",
        "tier",
    ):
        heights.add_column(col, justify="right")

    def ms(rec: dict[str, Any], leg: str) -> str:
        v = rec["legs_ms"].get(leg)
        return "-" if v is None else ("failed" if v < 0 else f"{v} ms")

    for h in sorted(records)[-8:]:
        rec = records[h]
        heights.add_row(
            str(h),
            str(rec["proposer"]),
            str(rec["txs"]),
            ms(rec, "bls"),
            ms(rec, "pulsar"),
            ms(rec, "corona"),
            ms(rec, "magnetar"),
            f"{rec['finalized_ms']} ms" if rec["finalized_ms"] else "-",
            rec["tier"],
        )
    elapsed = max(time.monotonic() - started, 1e-6)
    line = (
        f"load: {load.stats.sent} txs sent ({load.stats.sent / elapsed:.0f}/s), "
        f"{load.stats.malformed} malformed on purpose, {load.stats.failed} failed sends; "
        f"{elapsed:.0f}s elapsed"
    )
    return Group(nodes, heights, line)


def _quiet_failed_dials(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Drop asyncio's "never retrieved" report of a dial that already failed.

    qh3 sets ConnectionError on its connected-waiter after our bounded dial gave
    up on it; the failure was already handled (the peer is retried or skipped).
    Every other report goes to the default handler.
    """
    if isinstance(context.get("exception"), ConnectionError) and "never retrieved" in str(
        context.get("message", "")
    ):
        return
    loop.default_exception_handler(context)


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
    result = DevnetResult()
    started = time.monotonic()
    asyncio.get_running_loop().set_exception_handler(_quiet_failed_dials)
    load = LoadGenerator(genesis, rate=rate, malformed_every=malformed_every)
    stop_load = asyncio.Event()
    deadline = started + timeout_s
    while time.monotonic() < deadline and len(load.peers) < len(homes) and alive():
        await load.connect()
        if len(load.peers) < len(homes):
            await asyncio.sleep(0.5)
    load_task = asyncio.create_task(load.run(stop_load))
    statuses: dict[int, dict[str, Any] | None] = {}
    seen: dict[int, tuple[float, int]] = {}
    rates: dict[int, float] = {}
    ctx = Live(console=console, refresh_per_second=4) if live else contextlib.nullcontext()
    with ctx as view:
        while time.monotonic() < deadline and alive():
            statuses = {i: read_status(h) for i, h in enumerate(homes)}
            now = time.monotonic()
            for i, st in statuses.items():
                if st is not None:
                    t0, a0 = seen.get(i, (started, 0))
                    if now - t0 >= 1.0:
                        rates[i] = (st["admitted"] - a0) / (now - t0)
                        seen[i] = (now, st["admitted"])
            if view is not None:
                view.update(_view(statuses, load, started, rates))
            done = [s for s in statuses.values() if s is not None and s.get("halted")]
            if len(done) == len(homes):
                break
            if any(s is not None and s["height"] >= blocks - 2 for s in statuses.values()):
                stop_load.set()  # let the last blocks drain the mempool
            await asyncio.sleep(0.25)
    stop_load.set()
    if not alive():
        console.print("[red]a validator process exited early[/red]: see node-*/stdout.txt")
    await asyncio.wait_for(load_task, 10)
    result.elapsed_s = time.monotonic() - started
    result.load = {
        "sent": load.stats.sent,
        "malformed": load.stats.malformed,
        "failed": load.stats.failed,
    }
    final = {i: s for i, s in statuses.items() if s is not None}
    result.roots = {i: s["state_root"] for i, s in final.items()}
    result.heads = {i: s["head"] for i, s in final.items()}
    result.height = min((s["height"] for s in final.values()), default=0)
    result.agreed = (
        len(final) == len(homes)
        and all(s.get("halted") for s in final.values())
        and len(set(result.roots.values())) == 1
        and len(set(result.heads.values())) == 1
    )
    for s in final.values():
        for stage, n in s["rejects"].items():
            result.rejects[stage] = result.rejects.get(stage, 0) + n
    client = LightClient(genesis)
    try:
        fetched = await client.refetch_range(1, result.height)
        result.light_client_ok = sum(1 for f in fetched if f.ok)
        result.light_client_failed = sum(1 for f in fetched if not f.ok)
        result.txs_finalized = sum(f.txs for f in fetched if f.ok)
        result.light_client_bytes = sum(f.size for f in fetched if f.ok)
        result.light_client_chunks = sum(f.chunks for f in fetched if f.ok)
        result.light_client_providers = max((f.providers for f in fetched), default=0)
        for f in fetched:
            if f.ok:
                result.tiers[f.tier] = result.tiers.get(f.tier, 0) + 1
    finally:
        await client.close()
        await load.close()
    return result


def spawn_node(
    home: Path, *, metrics_port: int = 0, halt_height: int = 0, state_sync: bool = False
) -> subprocess.Popen[bytes]:
    """Start one ``zap node`` process for ``home`` (output in ``home/stdout.txt``)."""
    args = [sys.executable, "-m", "zapstack.cli", "node", "--home", str(home)]
    args += ["--metrics-port", str(metrics_port), "--halt-height", str(halt_height)]
    if state_sync:
        args.append("--state-sync")
    out = open(home / "stdout.txt", "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


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
            procs.append(spawn_node(h, metrics_port=base + 1000 + i, halt_height=blocks))

        def alive() -> bool:
            return all(p.poll() is None for p in procs)

        result = asyncio.run(
            _drive(homes, genesis, blocks, rate, malformed_every, timeout_s, console, live, alive)
        )
    finally:
        for i, p in enumerate(procs):
            if p.poll() is not None:  # died before we stopped it: say why
                lines = (homes[i] / "stdout.txt").read_text(errors="replace").strip().splitlines()
                console.print(
                    f"[red]node {i} exited with {p.returncode}[/red]: {lines[-1] if lines else ''}"
                )
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    _summary(console, result, n)
    return result


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
    console.print(table)
    verdict = "[green]OK[/green]" if r.ok else "[red]FAILED[/red]"
    console.print(f"devnet of {n} validators: {verdict}")
