"""A deterministic clock for sans-IO cores: ``now()`` only moves when told to."""

from __future__ import annotations


class MockClock:
    """Monotonic time in seconds that advances only through :meth:`advance`."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        """The current mock time in seconds."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError("a clock never goes backwards")
        self._now += seconds
        return self._now
