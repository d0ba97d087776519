"""Peers' requests for one worker: bounded per peer and in all, served round-robin.

Contract
--------
:class:`FairQueue` holds the requests (any job: it never runs them) that wait for, or
hold, the node's serving worker (:mod:`.stateserve`).  A peer holds at most ``per_peer``
of them (queued or running) and all peers at most ``total``.  A request past
``per_peer`` is refused.  One past ``total`` is not simply refused: if some peer holds
at least two more than the asker and has one still queued, that peer's newest queued
request is evicted (the caller refuses it with ``RATE_LIMITED``) and the asker's taken,
so a few connections that fill the queue cannot keep another peer out; otherwise it is
refused.  Peers in ``priority`` (a node's fellow validators) come first: a priority
peer's request past ``total`` that the rule above leaves without room evicts instead the
newest queued request of the ordinary peer holding most (ties: earliest in turn), and an
ordinary peer's request never evicts a priority peer's -- so any number of identities,
which cost an attacker nothing, cannot keep a validator from resyncing.  :meth:`next`
hands out the queued requests one peer at a time, in turn (each peer's own in arrival
order), so a peer with many queued waits its turn behind a peer with one, never the
other way round.  Sans-IO and single-threaded (the loop's).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Collection
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Admission", "FairQueue"]

J = TypeVar("J")


@dataclass(frozen=True, slots=True)
class Admission(Generic[J]):
    """What :meth:`FairQueue.admit` did with a request."""

    taken: bool
    evicted: J | None = None
    """Another peer's queued request that made room (the caller refuses it)."""


class FairQueue(Generic[J]):
    """Requests of many peers for one worker (see the module docstring)."""

    def __init__(self, per_peer: int, total: int, priority: Collection[bytes] = ()) -> None:
        self.per_peer = per_peer
        self.total = total
        self.priority = frozenset(priority)
        """Peers whose requests come first (see the module docstring)."""
        self._open: Counter[bytes] = Counter()
        """Requests per peer, queued or running."""
        self._queued: OrderedDict[bytes, deque[J]] = OrderedDict()
        """Each peer's queued requests, oldest first; the peers in turn order."""

    def open(self, peer: bytes | None = None) -> int:
        """Requests queued or running, of ``peer`` or of all peers."""
        return self._open.total() if peer is None else self._open[peer]

    def admit(self, peer: bytes, job: J) -> Admission[J]:
        """Queue ``job`` of ``peer`` if the bounds let it in (see the module docstring)."""
        if self._open[peer] >= self.per_peer:
            return Admission(False)
        evicted = None
        if self._open.total() >= self.total:
            first = peer in self.priority
            holders = [
                p
                for p in self._queued
                if self._open[p] >= self._open[peer] + 2 and (first or p not in self.priority)
            ]
            if not holders and first:
                holders = [p for p in self._queued if p not in self.priority]
            if not holders:
                return Admission(False)
            victim = max(holders, key=lambda p: self._open[p])  # ties: earliest in turn
            evicted = self._queued[victim].pop()
            self._release(victim)
            if not self._queued[victim]:
                del self._queued[victim]
        self._open[peer] += 1
        self._queued.setdefault(peer, deque()).append(job)
        return Admission(True, evicted)

    def next(self) -> tuple[bytes, J] | None:
        """The next request to run (it stays counted until :meth:`done`), or None."""
        if not self._queued:
            return None
        peer, jobs = next(iter(self._queued.items()))
        job = jobs.popleft()
        del self._queued[peer]
        if jobs:
            self._queued[peer] = jobs  # to the back of the turn order
        return peer, job

    def done(self, peer: bytes) -> None:
        """A request of ``peer`` that :meth:`next` handed out has finished."""
        self._release(peer)

    def drain(self) -> list[J]:
        """Forget every queued request (the running ones stay counted); them, in turn order."""
        out = [job for jobs in self._queued.values() for job in jobs]
        for peer, jobs in self._queued.items():
            for _ in jobs:
                self._release(peer)
        self._queued.clear()
        return out

    def _release(self, peer: bytes) -> None:
        self._open[peer] -= 1
        if self._open[peer] <= 0:
            del self._open[peer]
