"""What ``zap node`` shows on the terminal: a start banner, one line per finalized block.

Contract
--------
* :class:`Terminal` writes to one text stream (``zap node``: stdout), flushed
  per line, in ``text`` (aligned, for people) or ``json`` (one object per
  line, ``"event": "start"`` / ``"block"``, for log shippers).
* :meth:`Terminal.banner` is written once, before the node serves: version,
  chain id, validator index of n, the QUIC listen address, the HTTP URL (or
  ``off``), home, log file and the height it starts at.
* :meth:`Terminal.block` is one line per height this node finalized: height,
  block id prefix, txs, proposer, round, tier, finalize ms (the aggregator's
  time from round start to FINAL; ``-`` when another validator aggregated it)
  and the time since the previous block here.
* :func:`terminal_log_handler` is the stderr handler for log records at
  ``--log-level`` in the same format; ``node.log`` keeps its JSON lines.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

import structlog

if TYPE_CHECKING:
    from zapstack.node.engine import HeightRecord

__all__ = ["ID_PREFIX", "Terminal", "terminal_log_handler"]

ID_PREFIX = 12
"""Hex digits of a block id shown per block."""


class Terminal:
    """Banner and per-block lines on one stream (see the module contract)."""

    def __init__(
        self,
        fmt: str = "text",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stdout
        self.clock = clock
        self.last: float | None = None

    def _emit(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def banner(self, fields: dict[str, Any]) -> None:
        """The start banner: ``fields`` in order (``version`` first)."""
        self.last = self.clock()
        if self.fmt == "json":
            self._emit(json.dumps({"event": "start", **fields}))
            return
        self._emit(f"zapstack {fields.get('version', '?')} -- zap node")
        for key, value in fields.items():
            if key != "version":
                self._emit(f"  {key.replace('_', ' '):<11} {value}")

    def block(self, record: HeightRecord) -> None:
        """One finalized height."""
        now = self.clock()
        since = None if self.last is None else round((now - self.last) * 1000)
        self.last = now
        final = record.finalized_ms or None
        if self.fmt == "json":
            body = {
                "event": "block",
                "height": record.height,
                "id": record.block_id,
                "txs": record.txs,
                "proposer": record.proposer,
                "round": record.round,
                "tier": record.tier,
                "finalize_ms": final,
                "since_ms": since,
            }
            self._emit(json.dumps(body))
            return
        self._emit(
            f"height {record.height:>6}  id {record.block_id[:ID_PREFIX]}  "
            f"txs {record.txs:>5}  proposer {record.proposer:>2}  round {record.round}  "
            f"tier {record.tier:<9}  finalize {'-' if final is None else f'{final} ms':>7}  "
            f"+{since if since is not None else 0} ms"
        )


def terminal_log_handler(level: str, fmt: str, stream: TextIO | None = None) -> logging.Handler:
    """A handler for records at ``level`` and above, as text or JSON lines."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setLevel(getattr(logging, level.upper()))
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso"),
            ],
        )
    )
    return handler
