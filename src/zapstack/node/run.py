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
Once the node is built its start-up heap is collected and frozen
(:func:`settle_heap`), so the garbage collector's full passes scan only what
the running node allocates.
Each failure is a :class:`~zapstack.errors.ZapError` with one line (``zap
node``: exit 2).  A node that halts on a fault returns the reason after
writing it to its log and ``status.json`` (:mod:`zapstack.node.halt`; ``zap
node``: one line, exit 1).

On the terminal (:mod:`zapstack.node.terminal`): a start banner once the node
is built, one line per finalized height on stdout, and log records at
``log_level`` and above on stderr (text or JSON); ``node.log`` keeps every
record at INFO and above as JSON lines.  The options come resolved
(:class:`~zapstack.node.settings.NodeSettings`: flag > env > file > default).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from zapstack.errors import ConfigError
from zapstack.node.blockstore import DamagedBlocks
from zapstack.node.config import find_genesis
from zapstack.node.datadir import HomeLock, check_chain, check_home, record_chain
from zapstack.node.genesis import Genesis, NodeKeys, load_genesis, load_node_keys
from zapstack.node.settings import NodeSettings, zap_version
from zapstack.node.terminal import Terminal, terminal_log_handler

if TYPE_CHECKING:
    from zapstack.node.node import Node

Repair = Callable[[Genesis, Path, DamagedBlocks], Awaitable[None]]
"""Re-fetch the damaged block files of a home (``zap node`` passes
:func:`zapstack.cli.repair.repair_blocks`; the node layer cannot import the light client)."""

__all__ = ["banner_fields", "check_ports", "configure_logging", "run_node", "settle_heap"]


def configure_logging(
    path: Path, level: int = logging.INFO, terminal: logging.Handler | None = None
) -> None:
    """JSON-lines logs (structlog formatting of stdlib records) into ``path``, and
    ``terminal`` (a handler with its own level) when given."""
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
    handler.setLevel(level)
    root = logging.getLogger()
    root.handlers[:] = [handler] if terminal is None else [handler, terminal]
    root.setLevel(min(level, terminal.level) if terminal is not None else level)


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
            hinfo = socket.getaddrinfo(http_host, http_port, type=socket.SOCK_STREAM)[0]
        except socket.gaierror as exc:
            raise ConfigError(
                f"cannot resolve the HTTP host {http_host!r}: {exc.strerror}"
            ) from None
        what = f"HTTP port {http_host}:{http_port}"
        probes.append((hinfo[0], socket.SOCK_STREAM, hinfo[4], what))
    for family, kind, addr, what in probes:
        with socket.socket(family, kind) as probe:
            try:
                probe.bind(addr)
            except OSError as exc:
                raise ConfigError(f"{what} is not available: {exc.strerror}") from None


def banner_fields(node: Node, settings: NodeSettings) -> dict[str, Any]:
    """What the start banner says (:meth:`zapstack.node.terminal.Terminal.banner`)."""
    g, addr = node.g, node.g.addresses[node.me]
    http = (
        f"http://{settings.http_host}:{settings.http_port}  (/health /metrics /explorer)"
        if settings.http_port
        else "off (--http-port)"
    )
    return {
        "version": zap_version(),
        "chain_id": f"0x{g.chain_id:x}",
        "genesis": g.genesis_id.hex()[:16],
        "validator": f"{node.me} of {g.vset.n}",
        "listen": f"{addr.host}:{addr.port} (UDP, QUIC {settings.quic})",
        "http": http,
        "home": str(node.home),
        "config": str(settings.config) if settings.config else "none",
        "log_file": str(node.home / "node.log"),
        "height": node.consensus.height - 1,
        "policy": f"{g.policy.mode.value} ({g.policy.variant.value})",
    }


def _prepare(settings: NodeSettings) -> tuple[Genesis, NodeKeys]:
    """Every check before the first write, then the logs and ``chain.json``."""
    home = settings.home
    g = load_genesis(find_genesis(home))
    keys = load_node_keys(home / "node.json", g)
    addr = g.addresses[keys.index]
    check_ports(addr.host, addr.port, settings.http_port, settings.http_host)
    first_start = check_chain(home, g)
    terminal = terminal_log_handler(settings.log_level, settings.log_format)
    configure_logging(home / "node.log", terminal=terminal)  # the first write into the home
    if first_start:
        record_chain(home, g)
    return g, keys


def settle_heap() -> None:
    """Once the node is built: collect the start-up garbage, then freeze what is left.

    What exists then (modules, genesis, keys, the expanded Ringtail key, tables) lives as
    long as the process; frozen, the garbage collector never scans it again.  A full
    collection scans every tracked object and holds the GIL throughout, so without this
    each one paused the node for the start-up heap on top of the live one.
    """
    gc.collect()
    gc.freeze()


def run_node(
    settings: NodeSettings,
    *,
    repair: Repair | None = None,
    terminal: Terminal | None = None,
) -> str | None:
    """Run the node of ``settings.home`` until SIGINT/SIGTERM (None) or a fault halts it
    (the reason); banner and per-block lines go to ``terminal`` (default: stdout)."""
    import uvloop

    from zapstack.node.node import Node

    home = settings.home
    check_home(home)
    lock = HomeLock(home)
    screen = terminal if terminal is not None else Terminal(settings.log_format)
    try:
        g, keys = _prepare(settings)

        def make() -> Node:
            return Node(
                home,
                genesis=g,
                keys=keys,
                binding=settings.quic,
                http_port=settings.http_port,
                http_host=settings.http_host,
                halt_height=settings.halt_height or None,
                state_sync=settings.state_sync,
                state_hold_blocks=settings.state_hold_blocks,
                db_max_gib=settings.db_max_gib,
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
            screen.banner(banner_fields(node, settings))
            node.on_block.append(screen.block)
            settle_heap()
            await node.serve()
            return node.fatal

        return uvloop.run(main())
    finally:
        lock.release()
