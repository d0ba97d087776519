"""Row "End-to-end devnet": a 4-validator devnet on this box at 1x, 3x and 10x its capacity.

What one run does, in order (every figure comes from this run):

1. **Ceiling**: times the node's tx-signature verifier (raw libsodium strict
   Ed25519, :func:`~zapstack.benchmarks.verify.raw_verify`) on one thread per
   usable core, before any node starts.  With the verified-signature cache each
   validator checks a tx's signature once (at admission on the validator it was
   submitted to, from gossip on the others; block verify finds it cached), so
   one tx costs ``validators`` checks; the ceiling is verifies/s over that.
2. **Devnet**: deals ``validators`` validators (``make_devnet``, the devnet
   policy) and starts them as ``zap node`` processes on 127.0.0.1 (real QUIC).
3. **Capacity**: offers the ramp's rates one after another (warm-up, then a
   steady window each) until two steps in a row are saturated
   (:func:`saturated`: under 80 % of the offer finalized, or under 10 % more
   than the best step before; one alone may be a consensus stall); capacity =
   the highest steady finalized tx/s seen.  The ramp's first step
   (light load) gives the light-load leg times.
4. **Loads**: offers each fixed load (4,000 tx/s, issue 14's figure) first,
   on users the ramp has not used, then 1x, 3x and 10x the capacity, each for a
   warm-up then a steady window.  The fixed load comes before the overloads so
   that it measures the steady state at that offer, not the 10x step's wake
   (its resubmissions, and users whose nonces must resync after the slices
   wrap).  Load comes from
   :mod:`.e2e_load` processes (one per ``per_process_rate`` tx/s, up to
   ``max_processes``; their stderr in ``load-*.log``), each on its own devnet
   users, over the answered TX_SUBMIT (a rejected tx is resubmitted later, its
   first send time kept).  Each process signs all its users' frames for the
   load ahead (:meth:`~zapstack.devnet.loadgen.LoadGenerator.presign`, at most
   ``e2e_load.PRESIGN_S``) before it says ready, so that the client's signing
   does not take the validators' cores in the window.
5. **Drain and agreement**: after every load (ramp steps included) waits up
   to ``drain_s`` for the mempools to empty, so that no load's backlog lands in
   the next one's window; at the end waits for every validator to report the
   same height, head and state root; stops the nodes and reads every data dir
   (chains sound, same blocks).

Per load (see :mod:`.e2e_stats` for the definitions): offered, submitted,
admitted tx/s and rejections by code in the window; finalized tx/s in the
window; p50 / p99 submit -> final of the txs first sent in the window (final
= first seen final by any validator's status file); p50 / p99 admitted -> final
of the txs admitted in the window, from the start of the submit that was
admitted (what admission control bounds: a pushed-back tx waits at its
client, not in the pool); medians of proposal ->
PQ-fast and -> PQ-heavy (the aggregator's leg times, ms after its round
started) over the heights final in the window.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zapstack.benchmarks.e2e_stats import (
    Ceiling,
    final_times,
    latencies,
    median_or_none,
    percentile,
    stage_medians,
    tier_ms,
    window_rate,
)
from zapstack.benchmarks.e2e_watch import Watcher, chains_agree, read_blocks
from zapstack.benchmarks.result import cores
from zapstack.benchmarks.verify import make_block, native_limit_s
from zapstack.consensus.policy import MODES, Mode
from zapstack.devnet.devnet import devnet_policy
from zapstack.devnet.processes import ProcessCluster, free_port_base
from zapstack.node.genesis import Genesis, load_genesis, make_devnet

__all__ = ["FULL_PLAN", "QUICK_PLAN", "LoadRun", "Plan", "Report", "measure", "saturated"]


@dataclass(frozen=True, slots=True)
class Plan:
    """How long and how hard one run loads the devnet."""

    validators: int = 4
    ramp: tuple[float, ...] = (100, 250, 500, 1000, 2000, 4000)
    """Offered tx/s of the capacity search, in order (the first: light load)."""
    step_warmup_s: float = 4.0
    step_window_s: float = 10.0
    multiples: tuple[float, ...] = (1.0, 3.0, 10.0)
    """Offered loads, as multiples of the measured capacity."""
    fixed: tuple[float, ...] = (4000.0,)
    """Offered loads in tx/s, whatever the capacity (issue 14's figure: 4,000 tx/s)."""
    warmup_s: float = 10.0
    window_s: float = 30.0
    per_process_rate: float = 1000.0
    """Offered tx/s per load-generator process."""
    max_processes: int = 4
    users: int = 18_000
    """Funded devnet users (each load process takes its own slice of them; past
    the last, slices start again from 0 and those users resync their nonces).
    At most 18,446: genesis caps the total allocation at 2^64 - 1."""
    drain_s: float = 20.0
    """Most seconds to wait after each load for the mempools to empty."""
    verifies: int = 4000
    """Signatures timed for the ceiling."""


FULL_PLAN = Plan()
QUICK_PLAN = Plan(
    ramp=(100, 400, 1600),
    step_warmup_s=2.0,
    step_window_s=8.0,
    warmup_s=4.0,
    window_s=10.0,
    drain_s=8.0,
    verifies=2000,
)
"""About two to four minutes on 2 cores (drains take longer on a busy box)."""


@dataclass(slots=True)
class LoadRun:
    """One offered load: what the load processes reported and what was seen final."""

    label: str
    offered: float
    """Target tx/s (all load processes together)."""
    start: float
    """Steady window start (monotonic s)."""
    end: float
    processes: int
    window: dict[str, Any] = field(default_factory=dict)
    """Summed load counters of the window: sent, admitted, failed, rejected."""
    sent: dict[bytes, float] = field(default_factory=dict)
    """Tx id -> first send."""
    admitted: dict[bytes, float] = field(default_factory=dict)
    """Tx id -> start of the submit that was admitted."""
    figures: dict[str, Any] = field(default_factory=dict)
    """Computed after the run (:func:`_figures`)."""


@dataclass(slots=True)
class Report:
    """Everything one run measured."""

    plan: Plan
    ceiling: Ceiling
    capacity: float = 0.0
    ramp: list[LoadRun] = field(default_factory=list)
    loads: list[LoadRun] = field(default_factory=list)
    """One per multiple of the capacity, in order."""
    fixed: list[LoadRun] = field(default_factory=list)
    """One per fixed offered load."""
    agreed_live: bool = False
    """Every validator reported one height, head and state root after the drain."""
    agreed_offline: bool = False
    """Every data dir sound and holding the same blocks up to the lowest head."""
    problems: list[str] = field(default_factory=list)
    final_height: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        c = self.ceiling
        return {
            "plan": {k: getattr(self.plan, k) for k in Plan.__slots__},
            "ceiling": {
                "verifies_per_s": c.verifies_per_s,
                "cores": c.cores,
                "checks_per_tx": c.checks_per_tx,
                "tx_per_s": c.tx_per_s,
            },
            "capacity_tx_s": self.capacity,
            "ramp": [{"label": r.label, **r.figures} for r in self.ramp],
            "loads": [{"label": r.label, **r.figures} for r in self.loads],
            "fixed": [{"label": r.label, **r.figures} for r in self.fixed],
            "agreed_live": self.agreed_live,
            "agreed_offline": self.agreed_offline,
            "problems": self.problems,
            "final_height": self.final_height,
            "seconds": self.seconds,
        }


def measure_ceiling(validators: int, n: int) -> Ceiling:
    """Verifies/s of the node's verifier on one thread per usable core (median of 3)."""
    block = make_block(n)
    width = cores()
    seconds = native_limit_s(block, width, repeat=3)
    return Ceiling(n / seconds, width, validators, 1)


class _Run:
    """One devnet run's state: the cluster, the watcher, the user slices handed out."""

    def __init__(self, plan: Plan, home: Path, genesis: Genesis, homes: list[Path]) -> None:
        self.plan, self.home, self.g, self.homes = plan, home, genesis, homes
        self.watcher = Watcher(homes)
        self.next_user = 0
        self.phase = 0

    def _users(self, n: int) -> int:
        if self.next_user + n > self.plan.users:
            self.next_user = 0  # wrap: reused users resync from their answers
        first = self.next_user
        self.next_user += n
        return first

    async def load(self, label: str, rate: float, warmup: float, window: float) -> LoadRun:
        """Offer ``rate`` tx/s for ``warmup + window`` seconds from load processes."""
        plan = self.plan
        procs = min(plan.max_processes, max(1, math.ceil(rate / plan.per_process_rate)))
        self.phase += 1
        outs, children = [], []
        for k in range(procs):
            logf = open(self.home / f"load-{self.phase}-{k}.log", "wb")  # noqa: SIM115
            # one tx in flight per user, answers take up to ~1.5 s on a busy box
            users = max(64, min(plan.users // 4, int(rate / procs * 1.5)))
            out = self.home / f"load-{self.phase}-{k}.json"
            args = ["--genesis", str(self.home / "genesis.json"), "--out", str(out)]
            args += ["--first-user", str(self._users(users)), "--users", str(users)]
            ahead = math.ceil(rate / procs * (warmup + window) / users) + 2
            args += ["--rate", str(rate / procs), "--presign", str(ahead), "--handshake"]
            args += ["--credit-share", str(procs)]  # one allowance, shared by the processes
            cmd = [sys.executable, "-m", "zapstack.benchmarks.e2e_load", *args]
            pipe = asyncio.subprocess.PIPE
            children.append(
                await asyncio.create_subprocess_exec(*cmd, stdin=pipe, stdout=pipe, stderr=logf)
            )
            logf.close()  # the child holds its own copy
            outs.append(out)
        # imported here: ``python -m zapstack.benchmarks.e2e_load`` imports this package
        # first, and a top-level import would load that module twice (runpy warns)
        from zapstack.benchmarks import e2e_load

        t0 = await e2e_load.release(children)  # each started, dialed and signed ahead
        run = LoadRun(label, rate, t0 + warmup, t0 + warmup + window, procs)
        await e2e_load.send_times(children, t0, run.start, run.end)
        await asyncio.wait_for(
            asyncio.gather(*(c.wait() for c in children)), run.end - time.monotonic() + 60
        )
        _merge(run, outs)
        return run


def _merge(run: LoadRun, outs: list[Path]) -> None:
    """Sum the load processes' reports into ``run``."""
    total: dict[str, Any] = {"sent": 0, "admitted": 0, "failed": 0, "rejected": {}}
    for out in outs:
        doc = json.loads(out.read_text(encoding="utf-8"))
        for k in ("sent", "admitted", "failed"):
            total[k] += doc["window"][k]
        for code, n in doc["window"]["rejected"].items():
            total["rejected"][code] = total["rejected"].get(code, 0) + n
        for tx_hex, t in doc["sent"]:
            run.sent.setdefault(bytes.fromhex(tx_hex), t)
        for tx_hex, t in doc.get("admitted", []):
            run.admitted.setdefault(bytes.fromhex(tx_hex), t)
    run.window = total


async def _drive(r: _Run, report: Report, log: Any) -> None:
    """Ramp, loads, drain, live agreement (the watcher polls all along)."""
    plan = r.plan
    stop = asyncio.Event()
    watch = asyncio.create_task(r.watcher.run(stop))
    try:
        while len(r.watcher.last) < plan.validators or min(r.watcher.heights()) < 1:
            await asyncio.sleep(0.2)
        over = 0  # consecutive saturated steps (one alone may be a stall)
        for k, rate in enumerate(plan.ramp):
            step = await r.load(f"ramp {rate:g}", rate, plan.step_warmup_s, plan.step_window_s)
            report.ramp.append(step)
            await _drain(r, plan.drain_s)
            fin = _finalized_in(r, step, final_times(r.watcher.observations))
            log(f"e2e: {step.label} tx/s offered: {fin:.0f} tx/s finalized")
            over = over + 1 if k and saturated(rate, fin, report.capacity) else 0
            report.capacity = max(report.capacity, fin)
            if over == 2:
                break
        for rate in plan.fixed:
            log(f"e2e: fixed {rate:.0f} tx/s offered")
            report.fixed.append(await r.load(f"{rate:g}/s", rate, plan.warmup_s, plan.window_s))
            await _drain(r, plan.drain_s)
        for m in plan.multiples:
            rate = m * report.capacity
            log(f"e2e: {m:g}x capacity = {rate:.0f} tx/s offered")
            report.loads.append(await r.load(f"{m:g}x", rate, plan.warmup_s, plan.window_s))
            await _drain(r, plan.drain_s)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not r.watcher.agreed():
            await asyncio.sleep(0.1)
        report.agreed_live = r.watcher.agreed()
    finally:
        stop.set()
        await watch


async def _drain(r: _Run, seconds: float) -> None:
    """Wait (at most ``seconds``) for every mempool to empty, so that one load's
    backlog does not count in the next one's window."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and r.watcher.mempools():
        await asyncio.sleep(0.25)


def saturated(offered: float, finalized: float, best_before: float) -> bool:
    """A ramp step past capacity: under 80 % of the offer finalized, or under 10 %
    more than the best step before it (the first, light, step is never judged)."""
    return finalized < 0.8 * offered or finalized < 1.1 * best_before


def _finalized_in(r: _Run, run: LoadRun, final_at: dict[int, float]) -> float:
    """Finalized tx/s in ``run``'s window, from the watcher's records (live)."""
    return window_rate(r.watcher.txs, final_at, run.start, run.end)


def _figures(
    run: LoadRun,
    blocks: dict[int, int],
    where: dict[bytes, int],
    final_at: dict[int, float],
    records: dict[int, dict[str, Any]],
) -> None:
    """Fill ``run.figures`` from the blocks and final times (see the module docstring)."""
    span = run.end - run.start
    lat, missing = latencies(run.sent, where, final_at, run.start, run.end)
    adm, _ = latencies(run.admitted, where, final_at, run.start, run.end)
    in_window = [h for h, t in final_at.items() if run.start <= t < run.end and h in records]
    fast = [MODES[Mode.PQ_FAST].legs, MODES[Mode.PQ_HEAVY].legs]
    tiers = [
        [
            t
            for h in in_window
            if (t := tier_ms(records[h]["legs_ms"], [leg.label for leg in legs])) is not None
        ]
        for legs in fast
    ]
    w = run.window
    run.figures = {
        "offered_tx_s": run.offered,
        "submitted_tx_s": w["sent"] / span,
        "admitted_tx_s": w["admitted"] / span,
        "rejected": w["rejected"],
        "failed": w["failed"],
        "load_processes": run.processes,
        "finalized_tx_s": window_rate(blocks, final_at, run.start, run.end),
        "new_tx_s": sum(1 for t in run.sent.values() if run.start <= t < run.end) / span,
        "latency_txs": len(lat),
        "sent_not_final": missing,
        "p50_s": percentile(lat, 50) if lat else None,
        "p99_s": percentile(lat, 99) if lat else None,
        "admitted_p50_s": percentile(adm, 50) if adm else None,
        "admitted_p99_s": percentile(adm, 99) if adm else None,
        "pq_fast_ms": median_or_none(tiers[0]),
        "pq_heavy_ms": median_or_none(tiers[1]),
        "heights": len(in_window),
        "stages_ms": stage_medians([records[h].get("stages_ms", {}) for h in in_window]),
    }


def measure(plan: Plan = FULL_PLAN, home: Path | None = None, log: Any = print) -> Report:
    """Run the whole measurement (see the module docstring)."""
    started = time.monotonic()
    log(f"e2e: timing {plan.verifies} signature verifies on {cores()} threads")
    report = Report(plan, measure_ceiling(plan.validators, plan.verifies))
    home = home or Path(tempfile.mkdtemp(prefix="zap-e2e-"))
    base = free_port_base(plan.validators)
    homes = make_devnet(
        home,
        plan.validators,
        base_port=base,
        users=plan.users,
        policy=devnet_policy(plan.validators),
    )
    genesis = load_genesis(home / "genesis.json")
    cluster = ProcessCluster(homes)
    r = _Run(plan, home, genesis, homes)
    log(f"e2e: {plan.validators} validators on 127.0.0.1:{base}.., data in {home}")
    try:
        for i in range(plan.validators):
            cluster.start(i)
        asyncio.run(_drive(r, report, log))
    finally:
        cluster.stop()
    report.agreed_offline, low, report.problems = chains_agree(homes, genesis)
    report.final_height = low
    blocks, where = read_blocks(homes[0], genesis, low)
    final_at = final_times(r.watcher.observations)
    for run in [*report.ramp, *report.loads, *report.fixed]:
        _figures(run, blocks, where, final_at, r.watcher.records)
    report.seconds = time.monotonic() - started
    return report
