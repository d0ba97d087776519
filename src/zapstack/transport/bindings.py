"""The QUIC library bindings by name, and a bounded uvloop runner.

``BINDINGS["qh3"]`` is production; ``BINDINGS["aioquic"]`` the independent
second stack the ``stream_reset`` vectors are cross-checked against.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from zapstack.transport.aioquic_adapter import AioquicBinding
from zapstack.transport.driver import Binding
from zapstack.transport.qh3_adapter import Qh3Binding, new_event_loop

__all__ = ["BINDINGS", "run_bounded"]

T = TypeVar("T")

BINDINGS: dict[str, Callable[[], Binding]] = {"qh3": Qh3Binding, "aioquic": AioquicBinding}
"""Binding name -> constructor."""


def run_bounded(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run ``coro`` on a fresh uvloop loop; ``TimeoutError`` after ``timeout`` s."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(asyncio.wait_for(coro, timeout))
