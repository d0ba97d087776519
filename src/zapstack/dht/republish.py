"""When a provider (re-)announces each key it holds: Kademlia's republish, rate-bounded.

Theory of operation
-------------------
A provider record lives :data:`~zapstack.dht.records.RECORD_TTL` (24 h) at the
nodes that took it, so a provider must announce every key it serves again
before that: :class:`ProvideSchedule` keeps one *due time* per key and hands
out the keys whose time came.  It is sans-IO: the caller passes ``now`` (any
monotonic clock, in seconds), starts an announcement (``ADD_PROVIDER`` at the
k closest nodes) for each key :meth:`ProvideSchedule.take` returns, and
reports its end with :meth:`ProvideSchedule.done`.

* **Due times.** :meth:`add` makes a key due at once (a block just
  finalized); :meth:`add_backlog` spreads many keys (every block a restarted
  node holds, newest first) at one per ``1 / rate`` seconds from ``now``, so
  a fresh block is never queued behind the backlog.  After a successful
  announcement a key is due again after ``period`` minus a random share of up
  to ``jitter × period`` (injected RNG), so keys announced together drift
  apart instead of coming due together forever; after a failed one it is due
  again after ``retry`` seconds.
* **Bounded announce rate.** :meth:`take` starts at most ``max_in_flight``
  announcements at a time and takes a token per announcement from a bucket
  of ``rate`` tokens/s (``burst`` at most): however many keys are due, never
  more than ``burst + rate × t`` announcements start in any ``t`` seconds.
* **Capacity.** Every key stays fresh while ``len(schedule) / rate`` is less
  than ``(1 − jitter) × period``: at the defaults (10/s, 12 h, jitter 0.25),
  324,000 keys.  :attr:`ProvideSchedule.capacity` says it.

Memory: a due time and a heap entry per key (no block bytes).  A key is
never handed out twice while in flight; :meth:`remove` and :meth:`done` are
idempotent.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable

from zapstack.dht.records import RECORD_TTL

__all__ = [
    "ANNOUNCE_BURST",
    "ANNOUNCE_RATE",
    "MAX_IN_FLIGHT",
    "REPUBLISH_JITTER",
    "REPUBLISH_PERIOD",
    "RETRY_AFTER",
    "ProvideSchedule",
]

REPUBLISH_PERIOD = RECORD_TTL / 2
"""Seconds between two announcements of one key (12 h: half the record TTL)."""
REPUBLISH_JITTER = 0.25
"""Up to this share of the period is taken off each re-announcement, at random."""
ANNOUNCE_RATE = 10.0
"""Announcements started per second at most (steady state)."""
ANNOUNCE_BURST = 10.0
"""Announcements that may start at once after a quiet spell."""
MAX_IN_FLIGHT = 4
"""Announcements running at once at most."""
RETRY_AFTER = 30.0
"""Seconds before a failed announcement is tried again."""


class ProvideSchedule:
    """Due times of the keys a provider serves (see the module docstring)."""

    def __init__(
        self,
        *,
        rng: random.Random,
        now: float,
        period: float = REPUBLISH_PERIOD,
        jitter: float = REPUBLISH_JITTER,
        rate: float = ANNOUNCE_RATE,
        burst: float = ANNOUNCE_BURST,
        max_in_flight: int = MAX_IN_FLIGHT,
        retry: float = RETRY_AFTER,
    ) -> None:
        if not (period > 0 and 0 <= jitter < 1 and rate > 0 and burst >= 1 and max_in_flight >= 1):
            raise ValueError("period, rate > 0; 0 <= jitter < 1; burst, max_in_flight >= 1")
        self.rng = rng
        self.period, self.jitter, self.rate, self.burst = period, jitter, rate, burst
        self.max_in_flight, self.retry = max_in_flight, retry
        self._due: dict[bytes, float] = {}
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = 0
        self._in_flight: set[bytes] = set()
        self._tokens, self._refilled = burst, now
        self.announced = 0
        """Announcements reported successful so far."""
        self.failed = 0
        """Announcements reported failed so far."""

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    @property
    def capacity(self) -> int:
        """Keys this schedule can keep fresh at its rate (module docstring)."""
        return int(self.rate * (1 - self.jitter) * self.period)

    @property
    def in_flight(self) -> int:
        """Announcements handed out and not yet reported done."""
        return len(self._in_flight)

    def due_at(self, key: bytes) -> float | None:
        """When ``key`` is next due (None: unknown or in flight)."""
        return None if key in self._in_flight else self._due.get(key)

    def _push(self, key: bytes, due: float) -> None:
        self._due[key] = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, key))

    def add(self, key: bytes, now: float) -> bool:
        """Serve ``key``: announce it as soon as the rate allows.  False if already held."""
        if key in self._due:
            return False
        self._push(key, now)
        return True

    def add_backlog(self, keys: Iterable[bytes], now: float) -> int:
        """Serve ``keys`` (in announce order), one due per ``1 / rate`` s; return how many new."""
        added = 0
        for key in keys:
            if key not in self._due:
                self._push(key, now + added / self.rate)
                added += 1
        return added

    def remove(self, key: bytes) -> None:
        """Stop announcing ``key`` (idempotent; an announcement in flight just ends)."""
        self._due.pop(key, None)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._refilled)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._refilled = max(self._refilled, now)

    def _head(self) -> tuple[float, bytes] | None:
        """The earliest live heap entry (stale ones dropped)."""
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) == due and key not in self._in_flight:
                return due, key
            heapq.heappop(self._heap)
        return None

    def take(self, now: float) -> list[bytes]:
        """The keys to announce now (each marked in flight until :meth:`done`)."""
        self._refill(now)
        out: list[bytes] = []
        while len(self._in_flight) < self.max_in_flight and self._tokens >= 1:
            head = self._head()
            if head is None or head[0] > now:
                break
            heapq.heappop(self._heap)
            self._tokens -= 1
            self._in_flight.add(head[1])
            out.append(head[1])
        return out

    def done(self, key: bytes, now: float, *, ok: bool) -> None:
        """The announcement of ``key`` ended; schedule the next one (idempotent)."""
        if key not in self._in_flight:
            return
        self._in_flight.discard(key)
        if ok:
            self.announced += 1
        else:
            self.failed += 1
        if key not in self._due:
            return  # removed meanwhile
        if ok:
            self._push(key, now + self.period - self.rng.uniform(0, self.jitter * self.period))
        else:
            self._push(key, now + self.retry)

    def next_deadline(self) -> float | None:
        """When :meth:`take` may next return a key (None: nothing due, or all slots busy)."""
        if len(self._in_flight) >= self.max_in_flight:
            return None
        head = self._head()
        if head is None:
            return None
        token_at = self._refilled + max(0.0, 1 - self._tokens) / self.rate
        return max(head[0], token_at)
