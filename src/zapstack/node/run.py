"""Process entry points: check, lock, then run a node with signals, logging and uvloop.

Contract
--------
:func:`run_node` checks everything an operator can get wrong *before* it
writes a byte into the data folder, in this order: the home is a writable
folder, nobody else holds its lock (:class:`~zapstack.node.datadir.HomeLock`),
genesis and ``node.json`` decode and every key matches genesis, the
validator's host resolves and its UDP port (and the metrics port) is free,
the data folder belongs to this chain (``chain.json``), and the store files
are sound (:meth:`~zapstack.zapdb.ZapDB.open`, the block files at the head;
damaged block files are re-fetched by ``repair`` when one is given, under the
home's lock, and the node starts when that succeeded).
Each failure is a :class:`~zapstack.errors.ZapError` with one line (``zap
node``: exit 2).  A node that halts on a fault returns the reason after
writing it to its log and ``status.json`` (:mod:`zapstack.node.halt`; ``zap
node``: one line, exit 1).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from zapstack.errors import ConfigError
from zapstack.node.blockstore import DamagedBlocks
from zapstack.node.config import find_genesis
from zapstack.node.datadir import HomeLock, check_chain, check_home, record_chain
from zapstack.node.genesis import Genesis, load_genesis, load_node_keys

Repair = Callable[[Genesis, Path, DamagedBlocks], Awaitable[None]]
"""Re-fetch the damaged block files of a home (``zap node`` passes
:func:`zapstack.cli.repair.repair_blocks`; the node layer cannot import the light client)."""

__all__ = ["check_ports", "configure_logging", "run_node"]


def configure_logging(path: Path, level: int = logging.INFO) -> None:
    """JSON-lines logs (structlog formatting of stdlib records) into ``path``."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(),
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso"),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def check_ports(host: str, port: int, http_port: int = 0, http_host: str = "127.0.0.1") -> None:
    """Resolve ``host`` and bind probes on UDP ``port`` and TCP ``http_host:http_port``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve the validator's host {host!r}: {exc.strerror}") from None
    probes: list[tuple[socket.AddressFamily, socket.SocketKind, Any, str]] = [
        (infos[0][0], socket.SOCK_DGRAM, infos[0][4], f"UDP port {host}:{port}")
    ]
    if http_port:
        try:
            tcp = socket.getaddrinfo(http_host, http_port, type=socket.SOCK_STREAM)[0]
        except socket.gaierror as exc:
            raise ConfigError(f"cannot resolve --http-host {http_host!r}: {exc.strerror}") from None
        probes.append((tcp[0], socket.SOCK_STREAM, tcp[4], f"HTTP port {http_host}:{http_port}"))
    for family, kind, addr, what in probes:
        with socket.socket(family, kind) as probe:
            try:
                probe.bind(addr)
            except OSError as exc:
                raise ConfigError(f"{what} is not available: {exc.strerror}") from None


def run_node(
    home: Path,
    *,
    http_port: int = 0,
    http_host: str = "127.0.0.1",
    binding: str = "qh3",
    halt_height: int | None = None,
    state_sync: bool = False,
    repair: Repair | None = None,
) -> str | None:
    """Run the node in ``home`` until SIGINT/SIGTERM (None) or a fault halts it (the reason)."""
    import uvloop

    from zapstack.node.node import Node

    check_home(home)
    lock = HomeLock(home)
    try:
        g = load_genesis(find_genesis(home))
        keys = load_node_keys(home / "node.json", g)
        addr = g.addresses[keys.index]
        check_ports(addr.host, addr.port, http_port, http_host)
        first_start = check_chain(home, g)
        configure_logging(home / "node.log")  # the first write into the data folder
        if first_start:
            record_chain(home, g)

        def make() -> Node:
            return Node(
                home,
                genesis=g,
                keys=keys,
                binding=binding,
                http_port=http_port,
                http_host=http_host,
                halt_height=halt_height,
                state_sync=state_sync,
            )

        async def main() -> str | None:
            try:
                node = make()
            except DamagedBlocks as damaged:
                if repair is None:
                    raise
                await repair(g, home, damaged)  # raises with one line when it cannot
                node = make()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, node.stop)
            await node.serve()
            return node.fatal

        return uvloop.run(main())
    finally:
        lock.release()
