"""Process entry points: run a node with signals, logging and uvloop."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import structlog

from zapstack.node.node import Node

__all__ = ["configure_logging", "run_node"]


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


def run_node(
    home: Path,
    *,
    metrics_port: int = 0,
    binding: str = "qh3",
    halt_height: int | None = None,
    state_sync: bool = False,
) -> None:
    """Run the node in ``home`` until SIGINT/SIGTERM; graceful shutdown."""
    import uvloop

    configure_logging(home / "node.log")

    async def main() -> None:
        node = Node(
            home,
            binding=binding,
            metrics_port=metrics_port,
            halt_height=halt_height,
            state_sync=state_sync,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, node.stop)
        await node.serve()

    uvloop.run(main())
