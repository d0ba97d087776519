"""Tx admission over real QUIC between two processes: pipelined vs serial, RTT, RSS.

Run: ``.venv/bin/python bench/bench_txadmit_quic.py``.

A receiver process (qh3 + uvloop, :class:`zapstack.node.adapters.mempool_quic.TxAdmitServer`:
stages 1-4 per stream as bytes land, signatures verified in batches on a
2-thread pool, stage 5 mempool insert) and a sender process holding one QUIC
connection per peer.  Every phase starts fresh processes (``spawn``), so each
receiver starts with an empty mempool and its own peak-RSS counter.

The clock is the sender's: from the first stream opened to the moment the last
**admit receipt** came back -- the receiver pushes each admitted frame back to
its submitter on MEMPOOL_GOSSIP (docs/formats/mempool.md §Admit receipts), so
every figure is end-to-end admitted work, measured over QUIC in both
directions.

* **pipelined**: 10k signed Ed25519 call txs (~500 B) split over CONNS peers
  (one connection each), each sending as fast as the transport's 64
  concurrent unidirectional streams per peer allow.
* **serial** baseline: one connection, one stream at a time: open, send, wait
  for the admit receipt, next.  Its receiver verifies inline (parse, validate,
  verify, insert; no thread hop), the most favourable serial setup.  Measured
  over a prefix of the same txs (SERIAL_N; SERIAL_N_RTT under RTT) -- a rate.
* **emulated RTT**: tried first as two network namespaces joined by a veth pair
  with ``netem delay`` (RTT/2 each way).  Where the kernel has no netem, the
  delay is injected in the *sender's datagram send path* instead (every
  datagram the sender transmits -- data and ACKs -- leaves RTT later: one round
  trip = RTT).  The table says which one ran.
* **limit**: raw Ed25519 verify/s (``cryptography``, keys pre-decoded), 1 and
  2 threads, in this process in the same run.
* **RSS**: RSS_CONNS connections x 64 streams each hold all but the last byte
  of a tx (12,800 in-flight buffers at the receiver); the receiver's RSS is
  sampled there, then the last bytes go out and everything is admitted.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import multiprocessing as mp
import os
import resource
import subprocess
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import psutil

from zapstack.benchmarks.txadmit import verify_limit as native_verify_limit
from zapstack.mempool import Mempool, TxReceiver
from zapstack.node.adapters.mempool_quic import TxAdmitConfig, TxAdmitServer
from zapstack.node.adapters.mempool_receipts import ReceiptTracker
from zapstack.transport.bindings import run_bounded
from zapstack.transport.driver import Endpoint, Peer
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.qh3_adapter import Qh3Binding
from zapstack.transport.streams import StreamType
from zapstack.zap import DEFAULT_CHAIN_ID, Signer, SigScheme, build_call

N_TXS = 10_000
CONNS = 4
STREAMS = 64  # TransportConfig.max_streams_uni (LP-0202 default)
SERIAL_N = 2_000
SERIAL_N_RTT = 300
RTT = 0.010
RSS_CONNS = 200
DATA = 315  # call data bytes -> 500-byte frames
SENDERS = 500
PHASE_TIMEOUT = 40.0
NETNS = ("zqbench-rx", "zqbench-tx")
VETH = ("zqbrx0", "zqbtx0")
NS_ADDR = ("10.77.91.1", "10.77.91.2")


def make_txs(n: int) -> list[bytes]:
    signers = [
        Signer(SigScheme.ED25519, hashlib.sha256(b"txadmit-quic-%d" % i).digest())
        for i in range(SENDERS)
    ]
    return [
        build_call(
            signers[i % SENDERS], bytes(32), bytes(DATA), 1 + (i * 7919) % 1000, i // SENDERS
        )
        for i in range(n)
    ]


def verify_limit(txs: list[bytes]) -> tuple[float, float]:
    """Raw Ed25519 verify/s on 1 and on 2 threads (the shared benchmark helper)."""
    return native_verify_limit(txs, 1), native_verify_limit(txs, 2)


# -- emulated RTT ---------------------------------------------------------------------
def _ip(*args: str) -> bool:
    return subprocess.run(["ip", *args], capture_output=True, timeout=10).returncode == 0


def netns_down() -> None:
    for ns in NETNS:
        _ip("netns", "del", ns)


def netns_up(rtt: float) -> str | None:
    """Two namespaces + veth + netem RTT/2 each way; ``None`` (cleaned up) if unavailable."""
    netns_down()
    delay = f"{rtt * 500:g}ms"
    steps = [
        ("netns", "add", NETNS[0]),
        ("netns", "add", NETNS[1]),
        ("link", "add", VETH[0], "netns", NETNS[0], "type", "veth", "peer", "name", VETH[1],
         "netns", NETNS[1]),
    ]  # fmt: skip
    for ns, dev, addr in zip(NETNS, VETH, NS_ADDR, strict=True):
        steps += [
            ("-n", ns, "addr", "add", f"{addr}/24", "dev", dev),
            ("-n", ns, "link", "set", dev, "up"),
            ("-n", ns, "link", "set", "lo", "up"),
        ]
    ok = all(_ip(*s) for s in steps)
    for ns, dev in zip(NETNS, VETH, strict=True):
        cmd = ["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem",
               "delay", delay]  # fmt: skip
        ok = ok and subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
    if ok:
        return f"netns + veth + netem delay {delay} each way"
    netns_down()
    return None


def enter_netns(name: str | None) -> None:
    if name is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


def inject_send_delay(peer: Peer, delay: float) -> None:
    """Every datagram this connection transmits leaves ``delay`` seconds later (FIFO)."""
    protocol = peer.protocol
    loop = asyncio.get_running_loop()
    many = protocol._sendto_many
    if many is not None:
        protocol._sendto_many = lambda dgs, addr: loop.call_later(delay, many, dgs, addr)
    transport = protocol._transport

    class Delayed:
        def sendto(self, data: bytes, addr: Any = None) -> None:
            loop.call_later(delay, transport.sendto, data, addr)

        def __getattr__(self, name: str) -> Any:
            return getattr(transport, name)

    protocol._transport = Delayed()


# -- child processes -------------------------------------------------------------------
@dataclass(frozen=True)
class Phase:
    name: str
    txs: list[bytes]
    conns: int
    serial: bool = False
    host: str = "127.0.0.1"
    rx_ns: str | None = None
    tx_ns: str | None = None
    inject: float = 0.0
    hold: bool = False


def _expect(conn: Connection, tag: str, timeout: float = PHASE_TIMEOUT) -> tuple[Any, ...]:
    if not conn.poll(timeout):
        raise TimeoutError(f"no {tag!r} within {timeout} s")
    msg: tuple[Any, ...] = conn.recv()
    if msg[0] != tag:
        raise RuntimeError(f"expected {tag!r}, got {msg!r}")
    return msg


async def _command(conn: Connection, tag: str) -> None:
    deadline = time.monotonic() + PHASE_TIMEOUT
    while not conn.poll():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {tag!r} command")
        await asyncio.sleep(0.005)
    msg = conn.recv()
    if msg != (tag,):
        raise RuntimeError(f"expected {tag!r}, got {msg!r}")


async def _poll_until(predicate: Any, timeout: float = PHASE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.002)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def receiver_main(conn: Connection, phase: Phase) -> None:
    enter_netns(phase.rx_ns)
    run_bounded(_receiver(conn, phase), PHASE_TIMEOUT * 2)


async def _receiver(conn: Connection, phase: Phase) -> None:
    errors = _count_loop_errors()
    rx = TxReceiver(
        Mempool(max_txs=4 * len(phase.txs)),
        chain_id=DEFAULT_CHAIN_ID,
        defer_verification=not phase.serial,
    )
    config = TxAdmitConfig(receipts=not phase.hold, verify_threads=2)
    server = TxAdmitServer(rx, config)
    endpoint = Endpoint(Qh3Binding(), NodeIdentity.generate(1000), server.handlers)
    port = await endpoint.listen(phase.host)
    server.start(endpoint)
    proc = psutil.Process()
    conn.send(("ready", port, endpoint.identity.node_id, proc.memory_info().rss))
    n = len(phase.txs)
    if phase.hold:  # every stream one byte short of its FIN
        await _poll_until(lambda: rx.in_flight >= n and rx.admission.bytes_reserved > 0)
        await asyncio.sleep(0.2)  # let qh3 settle its buffers before sampling
        held = (proc.memory_info().rss, rx.in_flight, rx.admission.bytes_reserved)
        conn.send(("holding", *held, server.peak_in_flight))
    else:
        await _poll_until(lambda: rx.stats.streams_opened > 0)
    t0, cpu0 = time.perf_counter(), _cpu()
    await _poll_until(lambda: server.admitted >= n)
    secs, cpu = time.perf_counter() - t0, _cpu() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    conn.send(("done", server.admitted, rx.stats.rejected_total, server.peak_in_flight,
               server.batches, cpu, peak, secs, len(errors)))  # fmt: skip
    await _command(conn, "stop")
    await server.close()
    await endpoint.close()


def _count_loop_errors() -> list[str]:
    """Count (instead of printing) exceptions escaping into the event loop."""
    errors: list[str] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, ctx: errors.append(repr(ctx.get("exception") or ctx.get("message")))
    )
    return errors


def sender_main(conn: Connection, phase: Phase, port: int, node_id: bytes) -> None:
    enter_netns(phase.tx_ns)
    run_bounded(_sender(conn, phase, port, node_id), PHASE_TIMEOUT * 2)


async def _sender(conn: Connection, phase: Phase, port: int, node_id: bytes) -> None:
    errors = _count_loop_errors()
    binding = Qh3Binding()
    endpoints: list[Endpoint] = []
    trackers: list[ReceiptTracker] = []

    async def dial(i: int) -> Peer:
        tracker = ReceiptTracker()
        endpoint = Endpoint(binding, NodeIdentity.generate(2000 + i), tracker.handlers)
        endpoints.append(endpoint)
        trackers.append(tracker)
        peer = await endpoint.dial(phase.host, port, node_id)
        if phase.inject:
            inject_send_delay(peer, phase.inject)
        return peer

    peers: list[Peer] = []
    for start in range(0, phase.conns, 25):  # a few handshakes at a time
        peers += await asyncio.gather(
            *(dial(i) for i in range(start, min(start + 25, phase.conns)))
        )
    shares = [phase.txs[c :: phase.conns] for c in range(phase.conns)]
    conn.send(("ready",))
    await _command(conn, "go")
    n = len(phase.txs)

    def received() -> int:
        return sum(t.received for t in trackers)

    t0 = time.perf_counter()
    if phase.serial:
        peer, tracker = peers[0], trackers[0]
        for raw in phase.txs:
            receipt = tracker.expect(raw)
            await (await peer.open_stream(StreamType.TX_SUBMIT)).finish(raw)
            await asyncio.wait_for(receipt, 10)
    elif phase.hold:

        async def hold(peer: Peer, txs: list[bytes]) -> list[Any]:
            streams = []
            for raw in txs:
                stream = await peer.open_stream(StreamType.TX_SUBMIT)
                await stream.write(raw[:-1])
                streams.append(stream)
            return streams

        held = await asyncio.gather(*(hold(p, s) for p, s in zip(peers, shares, strict=True)))
        conn.send(("holding",))
        await _command(conn, "finish")
        for streams, txs in zip(held, shares, strict=True):
            for stream, raw in zip(streams, txs, strict=True):
                await stream.finish(raw[-1:])
    else:

        async def pump(peer: Peer, txs: list[bytes]) -> None:
            for raw in txs:
                await (await peer.open_stream(StreamType.TX_SUBMIT)).finish(raw)

        await asyncio.gather(*(pump(p, s) for p, s in zip(peers, shares, strict=True)))
    if not phase.hold:  # the RSS phase's receiver pushes no receipts
        await _poll_until(lambda: received() >= n)
    conn.send(("done", time.perf_counter() - t0, received(), len(errors)))
    await _command(conn, "stop")
    for endpoint in endpoints:
        await endpoint.close()


def run_phase(phase: Phase) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    rx_conn, rx_child = ctx.Pipe()
    tx_conn, tx_child = ctx.Pipe()
    procs = [ctx.Process(target=receiver_main, args=(rx_child, phase), daemon=True)]
    out: dict[str, Any] = {}
    try:
        procs[0].start()
        _, port, node_id, out["rss_before"] = _expect(rx_conn, "ready")
        procs.append(
            ctx.Process(target=sender_main, args=(tx_child, phase, port, node_id), daemon=True)
        )
        procs[1].start()
        _expect(tx_conn, "ready")
        tx_conn.send(("go",))
        if phase.hold:
            _expect(tx_conn, "holding")
            _, out["rss_held"], out["in_flight"], out["bytes_held"], _ = _expect(rx_conn, "holding")
            tx_conn.send(("finish",))
        _, out["secs"], out["receipts"], out["tx_errors"] = _expect(tx_conn, "done")
        done = _expect(rx_conn, "done")
        keys = ("admitted", "rejected", "peak_in_flight", "batches", "rx_cpu", "rss_peak",
                "rx_secs", "rx_errors")  # fmt: skip
        out.update(zip(keys, done[1:], strict=True))
        for c in (rx_conn, tx_conn):
            c.send(("stop",))
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)
    receipts = 0 if phase.hold else len(phase.txs)
    assert out["admitted"] == len(phase.txs) and out["receipts"] == receipts, (phase.name, out)
    out["rate"] = len(phase.txs) / out["secs"]
    return out


def run_phase_retry(phase: Phase) -> dict[str, Any]:
    """One retry with fresh processes if a phase times out (see the qh3 note in main)."""
    try:
        return run_phase(phase)
    except TimeoutError as exc:
        print(f"  [{phase.name}: {exc}; retrying once with fresh processes]")
        out = run_phase(phase)
        out["retried"] = True
        return out


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def main() -> None:
    print(f"tx admission over real QUIC (qh3 + uvloop), receiver and sender in separate "
          f"processes, {os.cpu_count()} cores")  # fmt: skip
    load = os.getloadavg()
    print(f"  load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (cores are shared)")
    t0 = time.perf_counter()
    all_txs = make_txs(RSS_CONNS * STREAMS)
    txs = all_txs[:N_TXS]
    avg = sum(map(len, txs)) / len(txs)
    print(f"  built {len(all_txs)} signed Ed25519 call txs, avg {avg:.0f} B, "
          f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    one, two = verify_limit(txs)

    rtt_how = netns_up(RTT)
    rtt_label = rtt_how or f"delay injected in the sender's datagram send path ({RTT * 1e3:g} ms)"
    if rtt_how:
        rtt_kw: dict[str, Any] = {
            "host": NS_ADDR[0], "rx_ns": NETNS[0], "tx_ns": NETNS[1]
        }  # fmt: skip
    else:
        rtt_kw = {"inject": RTT}
    try:
        runs = {
            "pipe": run_phase_retry(Phase("pipelined", txs, CONNS)),
            "serial": run_phase_retry(Phase("serial", txs[:SERIAL_N], 1, serial=True)),
            "pipe_rtt": run_phase_retry(Phase("pipelined+rtt", txs, CONNS, **rtt_kw)),
            "serial_rtt": run_phase_retry(
                Phase("serial+rtt", txs[:SERIAL_N_RTT], 1, serial=True, **rtt_kw)
            ),
        }
    finally:
        if rtt_how:
            netns_down()
    rss = run_phase_retry(Phase("rss", all_txs, RSS_CONNS, hold=True))

    print("\nlimit: raw Ed25519 verify (cryptography, keys pre-decoded, this process)")
    print(f"  1 thread : {one:9,.0f} verify/s")
    print(f"  2 threads: {two:9,.0f} verify/s  (x{two / one:.2f})")
    print(f"\nemulated RTT: {rtt_label}")
    print(f"\n{'admit throughput (end-to-end, to the last admit receipt)':58s}"
          f"{'no added RTT':>16s}{f'RTT {RTT * 1e3:g} ms':>16s}")  # fmt: skip
    print(f"  {'pipelined: ' + f'{CONNS} peers x {STREAMS} streams, {N_TXS} txs':56s}"
          f"{runs['pipe']['rate']:>11,.0f} tx/s{runs['pipe_rtt']['rate']:>11,.0f} tx/s")  # fmt: skip
    print(f"  {'serial: 1 stream at a time, wait for admit receipt':56s}"
          f"{runs['serial']['rate']:>11,.0f} tx/s{runs['serial_rtt']['rate']:>11,.0f} tx/s")  # fmt: skip
    print(f"  {'  (serial measured over the first N txs)':56s}"
          f"{f'N={SERIAL_N}':>16s}{f'N={SERIAL_N_RTT}':>16s}")  # fmt: skip
    r0 = runs["pipe"]["rate"] / runs["serial"]["rate"]
    r1 = runs["pipe_rtt"]["rate"] / runs["serial_rtt"]["rate"]
    print(f"  {'ratio pipelined / serial':56s}{f'x{r0:.1f}':>16s}{f'x{r1:.1f}':>16s}")
    for label, lim in (("1-thread", one), ("2-thread", two)):
        print(f"  {f'pipelined as a fraction of the {label} verify limit':56s}"
              f"{runs['pipe']['rate'] / lim:>16.1%}{runs['pipe_rtt']['rate'] / lim:>16.1%}")  # fmt: skip
    for key in ("pipe", "pipe_rtt", "serial", "serial_rtt"):
        r = runs[key]
        verify = (
            f"{r['batches']:4d} verify batches (avg {r['admitted'] / max(r['batches'], 1):.1f})"
            if r["batches"]
            else "inline verify"
        )
        print(f"  receiver ({key:10s}): CPU {r['rx_cpu'] / r['admitted'] * 1e6:4.0f} us/tx "
              f"(incl. the bench's 2 ms poller), peak in-flight {r['peak_in_flight']:5d} "
              f"streams, {verify}, receiver-side {r['admitted'] / r['rx_secs']:,.0f} tx/s")  # fmt: skip

    n = RSS_CONNS * STREAMS
    print(f"\nreceiver RSS under {n} in-flight buffers ({RSS_CONNS} QUIC connections x "
          f"{STREAMS} streams, each stream one byte short of its ~{avg:.0f} B tx)")  # fmt: skip
    print(f"  RSS after listen, before any peer   {mib(rss['rss_before'])}")
    print(f"  RSS holding {rss['in_flight']} in-flight streams  {mib(rss['rss_held'])}  "
          f"(+{mib(rss['rss_held'] - rss['rss_before'])}, "
          f"{(rss['rss_held'] - rss['rss_before']) / n:,.0f} B per stream incl. "
          f"QUIC state; payload reserved {mib(rss['bytes_held'])})")  # fmt: skip
    print(f"  peak RSS (ru_maxrss, whole run)     {mib(rss['rss_peak'])}")
    print(f"  then all {rss['admitted']} admitted {rss['rx_secs']:.2f} s after the receiver "
          "reported them held")  # fmt: skip
    errs = {k: (r["rx_errors"], r["tx_errors"]) for k, r in {**runs, "rss": rss}.items()}
    print(f"\nqh3 errors escaping to the event loop (receiver, sender) per phase: {errs}")
    print(
        "  (qh3 2.1.0 intermittently raises 'ValueError: reserved stream is missing' from "
        "poll_transmit under heavy stream churn; a phase that stalls on it is retried once)"
    )
    retried = [k for k, r in {**runs, "rss": rss}.items() if r.get("retried")]
    if retried:
        print(f"  retried phases: {retried}")


if __name__ == "__main__":
    main()
