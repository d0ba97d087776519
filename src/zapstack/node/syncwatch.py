"""A state sync's progress: its stall bound, its progress lines and its status record.

Contract
--------
A node's state sync is bounded by progress, not by a total time: a large state over a
slow link takes as long as it takes, and a sync that stopped moving fails.
:class:`SyncWatch` is told, at each poll, the target height the client chose (None before
one) and its :class:`~zapstack.bootstrap.events.StateProgress`, with ``now``.  Progress
is a target chosen, a chunk depth chosen (the depth probe answered), or one more chunk
verified; each comes from a certified block or a chunk checked against the certified
root, so no peer can fake it (a peer can only withhold it).

* :meth:`SyncWatch.stalled` -- True once no progress came for ``stall_s`` seconds
  (counted from the start until the first).
* :meth:`SyncWatch.retarget_due` -- True once a target is chosen, no progress came for
  ``retarget_s`` seconds, and the peers refused the target's chunks NOT_FOUND since the
  last progress (the ``not_found`` count told at each poll rose): they stopped serving
  that root, so the sync should start over at a newer block, at most ``retargets``
  times.  :meth:`SyncWatch.retargeted` records that it did: the target is cleared and
  the new start counts as progress (a new target then is progress too).
* :meth:`SyncWatch.line` -- a progress line for the log, at most one every ``every_s``
  seconds and only while chunks are downloaded; None otherwise.
* :meth:`SyncWatch.record` -- the status record (``state_sync`` in ``status.json`` and
  ``GET /v1/status``): target, chunks of total, entries, seconds since the start and
  since the last progress, times started over, NOT_FOUND refusals so far.

Sans-IO: ``now`` is passed in; nothing is read or written.
"""

from __future__ import annotations

from typing import Any

from zapstack.bootstrap.events import NO_PROGRESS, StateProgress

__all__ = ["SyncWatch"]


class SyncWatch:
    """The progress of one state sync (see the module docstring)."""

    def __init__(
        self,
        now: float,
        stall_s: float,
        every_s: float,
        *,
        retarget_s: float | None = None,
        retargets: int = 0,
    ) -> None:
        if stall_s <= 0 or every_s <= 0 or (retarget_s is not None and retarget_s <= 0):
            raise ValueError("stall_s, every_s and retarget_s must be positive")
        self.stall_s = stall_s
        self.every_s = every_s
        self.retarget_s = retarget_s
        """No progress for this long while the target's chunks are refused NOT_FOUND: start
        over (None: never)."""
        self.max_retargets = retargets
        """Most times the sync may start over."""
        self.retargets = 0
        """Times the sync started over at a newer block."""
        self.started = now
        self.moved = now
        """When progress last came (the start until the first)."""
        self.now = now
        """The last poll's time."""
        self.target: int | None = None
        self.progress = NO_PROGRESS
        self._download_from: tuple[float, int] | None = None
        """(when, chunks) at the first poll that saw a chunk total: the rate's origin."""
        self._last_line = now
        self._not_found = self._not_found_at_move = 0
        """NOT_FOUND refusals of the target's chunks: at the last poll, at the last progress."""

    def observe(
        self, target: int | None, progress: StateProgress, now: float, not_found: int = 0
    ) -> None:
        """The client's target height and progress at ``now``, and how many STATE_CHUNK
        requests the peers refused NOT_FOUND so far (a count that only grows)."""
        if (target, progress.total, progress.chunks) != (
            self.target,
            self.progress.total,
            self.progress.chunks,
        ):
            self.moved = now
            self._not_found_at_move = not_found
        self._not_found = not_found
        self.now = now
        if progress.total and self._download_from is None:
            self._download_from = (now, progress.chunks)
            self._last_line = now  # the first line comes every_s after the download starts
        self.target, self.progress = target, progress

    def stalled(self, now: float) -> bool:
        """No progress for ``stall_s`` seconds."""
        return now - self.moved >= self.stall_s

    def retarget_due(self, now: float) -> bool:
        """The peers stopped serving the target's root: start over (module docstring)."""
        return (
            self.retarget_s is not None
            and self.retargets < self.max_retargets
            and self.target is not None
            and now - self.moved >= self.retarget_s
            and self._not_found > self._not_found_at_move
        )

    def retargeted(self, now: float) -> None:
        """The sync started over at ``now``: no target, no chunks; that is progress."""
        self.retargets += 1
        self.target, self.progress = None, NO_PROGRESS
        self.moved = now
        self._not_found_at_move = self._not_found
        self._download_from = None

    def rate(self, now: float) -> float | None:
        """Chunks verified per second since the download started (None before it, or
        before any time passed)."""
        if self._download_from is None or now <= self._download_from[0]:
            return None
        since, chunks = self._download_from
        return (self.progress.chunks - chunks) / (now - since)

    def line(self, now: float) -> str | None:
        """A progress line if one is due (see the module docstring)."""
        p = self.progress
        if not p.total or now - self._last_line < self.every_s:
            return None
        self._last_line = now
        text = (
            f"state sync at height {self.target}: {p.chunks}/{p.total} chunks "
            f"({100 * p.chunks / p.total:.0f}%), {p.entries} entries, "
            f"{now - self.started:.0f} s"
        )
        rate = self.rate(now)
        if rate:
            text += f", {rate:.1f} chunks/s, about {(p.total - p.chunks) / rate:.0f} s to go"
        elif now - self.moved >= self.every_s:
            text += f", no chunk for {now - self.moved:.0f} s"
        return text

    def record(self, now: float) -> dict[str, Any]:
        """The status record (see the module docstring)."""
        p = self.progress
        return {
            "target": self.target,
            "chunks": p.chunks,
            "of": p.total,
            "entries": p.entries,
            "seconds": round(now - self.started, 1),
            "idle_s": round(now - self.moved, 1),
            "retargets": self.retargets,
            "not_found": self._not_found,
        }

    def failure(self, now: float) -> str:
        """Why a stalled sync fails: what it had reached, and for how long nothing came."""
        p = self.progress
        where = (
            "before choosing a target block"
            if self.target is None
            else (
                f"at height {self.target}, "
                + (f"{p.chunks}/{p.total} chunks" if p.total else "before choosing a chunk depth")
            )
        )
        return (
            f"state sync made no progress for {now - self.moved:.0f} s ({where}, "
            f"{now - self.started:.0f} s in): no peer served what it needs"
        )
