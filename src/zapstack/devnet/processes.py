"""Validator processes on loopback: free ports, spawning, status files, a cluster.

Every tool that drives real nodes (``zap devnet``, ``zap soak``, the node tests)
starts them as separate ``zap node`` processes and watches them only through
what each writes to its home folder (``status.json``, ``stdout.txt``).

* :func:`free_port_base` picks a block of listener ports below the kernel's
  ephemeral range;
* :func:`spawn_node` starts one node process, its output appended to
  ``home/stdout.txt``;
* :func:`read_status` reads a node's ``status.json`` (None while it is absent or
  being replaced);
* :func:`log_alerts` lists the lines of a node's ``node.log`` an operator
  alerting on the log would be paged for (ERROR, WARNING, CRITICAL, or not a
  JSON log record at all);
* :class:`ProcessCluster` holds N node processes over one devnet home and
  starts, kills, restarts and stops them; :meth:`ProcessCluster.report` says what
  each is doing, for a failing test's message.

Everything here is blocking and synchronous (``subprocess``, file reads);
callers on an event loop call it between awaits.  Stopping is idempotent: a
process that already exited is skipped, one that ignores SIGTERM for 15 s is
SIGKILLed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "ALERT_LEVELS",
    "ProcessCluster",
    "free_port_base",
    "log_alerts",
    "read_status",
    "spawn_node",
]

ALERT_LEVELS = frozenset({"warning", "error", "critical"})
"""``node.log`` levels an operator alerts on; a devnet run must leave none."""


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


def read_status(home: Path) -> dict[str, Any] | None:
    """A node's status.json, or None while absent / being replaced."""
    try:
        data = json.loads((home / "status.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def log_alerts(home: Path) -> list[str]:
    """The lines of ``home/node.log`` at an :data:`ALERT_LEVELS` level, or not JSON."""
    path = home / "node.log"
    if not path.exists():
        return []
    alerts = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
            level = str(record.get("level", "")).lower() if isinstance(record, dict) else ""
        except ValueError:
            level = "unstructured"
        if level in ALERT_LEVELS or level in ("", "unstructured"):
            alerts.append(line)
    return alerts


def spawn_node(
    home: Path, *, http_port: int = 0, halt_height: int = 0, state_sync: bool = False
) -> subprocess.Popen[bytes]:
    """Start one ``zap node`` process for ``home`` (output in ``home/stdout.txt``)."""
    args = [sys.executable, "-m", "zapstack.cli", "node", "--home", str(home)]
    args += ["--http-port", str(http_port), "--halt-height", str(halt_height)]
    if state_sync:
        args.append("--state-sync")
    out = open(home / "stdout.txt", "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


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

    def report(self, lines: int = 3) -> str:
        """Each validator's state for a failure message: running or its exit code, its
        height (or no status yet), the last ``lines`` lines of its stdout and the last
        ``lines`` alert lines of its log."""
        out = []
        for i, home in enumerate(self.homes):
            proc = self.procs.get(i)
            state = "not started" if proc is None else _exit_text(proc.poll())
            st = self.status(i)
            height = "no status" if st is None else f"height {st.get('height')}"
            out.append(f"validator {i}: {state}, {height}")
            stdout = home / "stdout.txt"
            text = stdout.read_text(errors="replace") if stdout.exists() else ""
            out += [f"  stdout: {line}" for line in text.splitlines()[-lines:]]
            out += [f"  log: {line[:300]}" for line in log_alerts(home)[-lines:]]
        return "\n".join(out)

    def stop(self) -> None:
        """Graceful stop of every process (SIGTERM, then SIGKILL after 15 s)."""
        stop_processes(list(self.procs.values()), 15)


def _exit_text(code: int | None) -> str:
    return "running" if code is None else f"exited {code}"


def stop_processes(procs: list[subprocess.Popen[bytes]], grace: float = 10) -> None:
    """SIGTERM every live process, then SIGKILL whichever is still up after ``grace`` s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _fsize_limiter(limit: int) -> Any:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply
