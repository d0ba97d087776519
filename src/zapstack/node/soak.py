"""``zap soak``: a bounded soak of a real devnet -- load, a killed validator, a malicious peer.

What it does, in order:

1. Deals a devnet and starts N ``zap node`` processes (:class:`ProcessCluster`),
   waits until every validator has finalized height 1, then for ``seconds``:

   * an honest load generator submits signed txs over QUIC to validators
     ``0..n-2`` (never to the one that gets killed, so no user's nonce sequence
     is broken by a dead target);
   * a :class:`MaliciousPeer` (a non-validator node id) connects to every
     validator and keeps sending malformed tx frames, consensus streams with a
     bad type byte and truncated consensus messages;
   * in each cycle (one per ~60 s, at least one) validator ``n-1`` is
     ``SIGKILL``\\ ed at a quarter of the cycle, its committed chain is read from
     its data dir while it is dead, and it is restarted at half the cycle; it
     must catch up with the others' height at restart time.

2. Stops the load and the malicious peer, stops every node (SIGTERM) and reads
   every data dir offline (:func:`read_chain`) to check, each a *violation*:

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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from zapstack.consensus import cert as cert_mod
from zapstack.errors import TransportError, ZapError
from zapstack.node.blockstore import BlockStore
from zapstack.node.devnet import free_port_base, read_status
from zapstack.node.genesis import Genesis, devnet_user, load_genesis, make_devnet
from zapstack.node.loadgen import LoadGenerator
from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Endpoint, OutStream, Peer
from zapstack.transport.events import End
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.streams import StreamType
from zapstack.verify.executor import HEAD_HEIGHT_META, HEAD_ID_META
from zapstack.zap.frames import build_transfer, parse_block
from zapstack.zapdb import ZapDB

__all__ = ["ChainRead", "MaliciousPeer", "ProcessCluster", "SoakResult", "read_chain", "run_soak"]


# ------------------------------------------------------------------ processes


class ProcessCluster:
    """N ``zap node`` processes over one devnet home; start, kill, restart, stop."""

    def __init__(self, homes: list[Path], halt_height: int | None = None) -> None:
        self.homes = homes
        self.halt_height = halt_height
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, i: int, *, file_size_limit: int | None = None) -> None:
        """Start validator ``i``; ``file_size_limit`` (bytes) caps every file it writes
        (``RLIMIT_FSIZE``): past it, writes fail with EFBIG -- a disk that is full."""
        args = [sys.executable, "-m", "zapstack.cli", "node", "--home", str(self.homes[i])]
        if self.halt_height is not None:
            args += ["--halt-height", str(self.halt_height)]
        limit = None if file_size_limit is None else _fsize_limiter(file_size_limit)
        with open(self.homes[i] / "stdout.txt", "ab") as out:
            self.procs[i] = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=limit
            )

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to validator ``i`` and wait for it to exit."""
        proc = self.procs.get(i)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def alive(self, i: int) -> bool:
        proc = self.procs.get(i)
        return proc is not None and proc.poll() is None

    def status(self, i: int) -> dict[str, Any] | None:
        """Validator ``i``'s status.json (None while absent)."""
        return read_status(self.homes[i])

    def heights(self) -> dict[int, int]:
        """Finalized height per validator with a status."""
        out = {}
        for i in range(len(self.homes)):
            st = self.status(i)
            if st is not None:
                out[i] = int(st["height"])
        return out

    def stop(self) -> None:
        """Graceful stop of every process (SIGTERM, then SIGKILL after 15 s)."""
        for i in list(self.procs):
            if self.alive(i):
                self.procs[i].send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _fsize_limiter(limit: int) -> Any:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


# ------------------------------------------------------------------ offline reads


@dataclass(frozen=True, slots=True)
class ChainRead:
    """What one node's data dir holds, read while the node is not running."""

    height: int
    """ZapDB's committed head height."""
    root: bytes
    """ZapDB's committed state root."""
    block_ids: tuple[bytes, ...]
    """sha256 of the stored block at heights 1..height."""
    problems: tuple[str, ...]
    """Missing blocks, broken links, cert / root mismatches (empty when sound)."""


def read_chain(home: Path, genesis: Genesis) -> ChainRead:
    """Open ``home``'s ZapDB and block store (node stopped) and check them."""
    problems: list[str] = []
    try:
        db = ZapDB.open(home / "db")
    except ZapError as exc:
        return ChainRead(0, b"", (), (f"ZapDB does not open: {exc}",))
    try:
        raw = db.meta_get(HEAD_HEIGHT_META)
        height = int.from_bytes(raw, "little") if raw else 0
        head = db.meta_get(HEAD_ID_META) or genesis.genesis_id
        root = db.root()
    finally:
        db.close()
    store = BlockStore(home / "blocks")
    ids: list[bytes] = []
    parent, state_root = genesis.genesis_id, b""
    for h in range(1, height + 1):
        block, cert = store.block(h), store.cert(h)
        if block is None or cert is None:
            problems.append(f"height {h}: block or cert missing")
            break
        bid = hashlib.sha256(block).digest()
        view = parse_block(block, chain_id=genesis.chain_id)
        if cert_mod.decode(cert).block_id != bid or view.height != h or view.parent != parent:
            problems.append(f"height {h}: block does not match its cert or parent")
        ids.append(bid)
        parent, state_root = bid, view.state_root
    if height and len(ids) == height:
        if parent != head:
            problems.append(f"head id {head.hex()[:16]} is not block {height}")
        if state_root != root:
            problems.append(f"state root {root.hex()[:16]} != block {height}'s post-state root")
    return ChainRead(height, root, tuple(ids), tuple(problems))


# ------------------------------------------------------------------ malicious peer


_BAD_TYPE = b"\x63" + bytes(30)
"""A consensus stream whose first byte is no message type: stopped at byte 0."""
_BAD_TX = (
    lambda f: b"\x7fZIP" + f[4:],  # stage 1: magic
    lambda f: f[:4] + b"\x09" + f[5:],  # stage 2: kind
    lambda f: f[:21] + b"\xff\xff\x00\x00" + f[25:],  # stage 4: offset overrun
)


@dataclass(slots=True)
class MaliciousStats:
    """What the malicious peer sent and what happened to it."""

    sent: dict[str, int] = field(default_factory=dict)
    """Streams sent, by kind."""
    stopped: dict[str, int] = field(default_factory=dict)
    """Streams the validator stopped (the peer saw STOP_SENDING), by kind."""
    dials: int = 0


class MaliciousPeer:
    """A non-validator peer sending only garbage on tx and consensus streams."""

    def __init__(self, genesis: Genesis, binding: str = "qh3") -> None:
        self.g = genesis
        self.endpoint = Endpoint(BINDINGS[binding](), NodeIdentity.generate(), {})
        self.peers: dict[int, Peer] = {}
        self.stats = MaliciousStats()
        self.open: list[tuple[str, OutStream]] = []
        seed = bytes.fromhex(genesis.raw.get("devnet_seed", ""))
        self.user = devnet_user(seed, 63)
        self.k = 0

    async def _peer(self, i: int) -> Peer | None:
        peer = self.peers.get(i)
        if peer is not None and not peer.session.closed:
            return peer
        a = self.g.addresses[i]
        self.stats.dials += 1
        try:
            self.peers[i] = await asyncio.wait_for(self.endpoint.dial(a.host, a.port, a.node_id), 3)
        except (TransportError, OSError, TimeoutError):
            return None
        return self.peers[i]

    async def _send(
        self, peer: Peer, kind: str, stream: StreamType, data: bytes, fin: bool
    ) -> None:
        try:
            out = await peer.open_stream(stream)
            await out.write(data, fin=fin)
        except (TransportError, ZapError):
            return
        self.stats.sent[kind] = self.stats.sent.get(kind, 0) + 1
        self.open.append((kind, out))

    def _settle(self) -> None:
        still: list[tuple[str, OutStream]] = []
        for kind, out in self.open:
            end = out.end
            if end is None or end[0] is End.FIN:
                if end is None:
                    still.append((kind, out))
                continue
            if end[0] is End.STOPPED:
                self.stats.stopped[kind] = self.stats.stopped.get(kind, 0) + 1
        self.open = still[-2000:]

    async def run(self, stop: asyncio.Event, period: float = 0.25) -> None:
        """Send one round of garbage to every validator each ``period`` s until ``stop``."""
        while not stop.is_set():
            for i in range(self.g.vset.n):
                peer = await self._peer(i)
                if peer is None:
                    continue
                self.k += 1
                frame = build_transfer(self.user, bytes(32), 1, 1, self.k, self.g.chain_id)
                bad_tx = _BAD_TX[self.k % len(_BAD_TX)](frame)
                await self._send(peer, "tx frame", StreamType.TX_SUBMIT, bad_tx[:48], False)
                stream = (StreamType.PROPOSAL, StreamType.CERT_SHARES)[self.k % 2]
                await self._send(peer, "consensus type", stream, _BAD_TYPE, False)
                await self._send(peer, "consensus short", StreamType.CERT_SHARES, b"\x02\x01", True)
            self._settle()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
        await asyncio.sleep(0.5)
        self._settle()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.endpoint.close(), 5)


# ------------------------------------------------------------------ the soak


@dataclass(slots=True)
class Restart:
    """One kill / restart cycle of the victim validator."""

    victim: int
    killed_at_s: float
    """Seconds into the soak when it was SIGKILLed."""
    pre_kill: ChainRead
    """Its data dir read while it was dead."""
    target: int = 0
    """The others' height when it was restarted (it must reach it)."""
    caught_up_s: float | None = None
    """Seconds from restart until it reached ``target`` (None: never)."""


@dataclass(slots=True)
class SoakResult:
    """Outcome of one soak."""

    seconds: float = 0.0
    heights: dict[int, int] = field(default_factory=dict)
    """Committed head height per validator (read offline at the end)."""
    common_height: int = 0
    """The lowest head: every validator holds the same blocks up to it."""
    common_root: str = ""
    """The certified post-state root at ``common_height`` (all agree on it)."""
    restarts: list[Restart] = field(default_factory=list)
    load: dict[str, int] = field(default_factory=dict)
    malicious: MaliciousStats = field(default_factory=MaliciousStats)
    rejects: dict[str, int] = field(default_factory=dict)
    """Tx streams rejected by stage, summed over the validators."""
    txs_finalized: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


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
    cycles = max(1, int(seconds // 60))
    span = seconds / cycles
    try:
        for c in range(cycles):
            await _cycle(cluster, g, result, start, start + c * span, span, console)
        await _wait(cluster, start + seconds)
        statuses = {i: _status_of(cluster, i) for i in range(n)}
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=15)
        await evil.close()
        with contextlib.suppress(Exception):
            await load.close()
    result.seconds = round(time.monotonic() - start, 1)
    result.load = {"sent": load.stats.sent, "failed": load.stats.failed}
    result.malicious = evil.stats
    for i, st in statuses.items():
        if st is None:
            result.violations.append(f"validator {i} is not running at the end")
            continue
        for stage, k in st["rejects"].items():
            result.rejects[stage] = result.rejects.get(stage, 0) + k
        missing = set(range(n)) - {i} - set(st["peers"])
        if missing:
            result.violations.append(f"validator {i} lost its links to {sorted(missing)}")


def _final_checks(cluster: ProcessCluster, g: Genesis, result: SoakResult) -> None:
    """Read every data dir (all nodes stopped) and record violations."""
    chains = {i: read_chain(h, g) for i, h in enumerate(cluster.homes)}
    bad = result.violations.append
    for i, c in chains.items():
        for problem in c.problems:
            bad(f"validator {i}: {problem}")
    result.heights = {i: c.height for i, c in chains.items()}
    common = min(result.heights.values())
    result.common_height = common
    for h in range(common):
        if len({c.block_ids[h] for c in chains.values() if len(c.block_ids) > h}) != 1:
            bad(f"validators hold different blocks at height {h + 1}")
    store = BlockStore(cluster.homes[0] / "blocks")
    for h in range(1, common + 1):
        block = store.block(h)
        if block is not None:
            view = parse_block(block)
            result.txs_finalized += view.tx_count
            if h == common:
                result.common_root = view.state_root.hex()
    for r in result.restarts:
        final = chains[r.victim]
        for problem in r.pre_kill.problems:
            bad(f"validator {r.victim} before its restart: {problem}")
        kept = final.block_ids[: len(r.pre_kill.block_ids)]
        if final.height < r.pre_kill.height or kept != r.pre_kill.block_ids:
            bad(f"validator {r.victim} lost committed blocks across its restart")
        if r.caught_up_s is None:
            bad(f"validator {r.victim} did not catch up to height {r.target} after its restart")
    if result.restarts and common <= result.restarts[-1].target:
        bad(f"the chain did not advance after the last restart (common height {common})")
    m = result.malicious
    for kind in ("tx frame", "consensus type"):
        if not m.stopped.get(kind):
            bad(f"no malformed {kind} stream of the malicious peer was stopped")


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
    _final_checks(cluster, g, result)
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
            f"{kind}: {m.sent[kind]} sent, {m.stopped.get(kind, 0)} stopped" for kind in m.sent
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
