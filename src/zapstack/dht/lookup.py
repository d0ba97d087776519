"""The α-parallel iterative Kademlia lookup as a pure state machine.

Theory of operation
-------------------
A lookup keeps a *shortlist* of candidate contacts ordered by XOR distance to
``target``.  :meth:`Lookup.next_queries` hands out up to ``alpha`` contacts to
query at a time: always the nearest not-yet-queried candidates among the ``k``
nearest still-eligible ones.  Each query ends in :meth:`Lookup.on_reply`
(which merges the contacts the peer returned, plus a value or providers) or
:meth:`Lookup.on_failure` (timeout, reset, malformed reply: the contact is
dropped from consideration).  The lookup is **finished** when

* mode ``VALUE`` and a value was found, or
* mode ``PROVIDERS`` and ``want_providers`` distinct providers are known, or
* nothing is in flight and every one of the ``k`` nearest eligible
  candidates has replied (classic Kademlia termination).

The lookup never sees bytes or time: the owning node turns queries into RPCs
and timeouts into failures.  Calling ``on_reply``/``on_failure`` for a contact
that is not in flight is ignored (idempotent).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from zapstack.dht.ids import Contact, distance

__all__ = ["Lookup", "LookupMode", "LookupResult"]


class LookupMode(enum.Enum):
    """What the lookup is after."""

    NODES = "nodes"
    VALUE = "value"
    PROVIDERS = "providers"


class _St(enum.Enum):
    NEW = 0
    IN_FLIGHT = 1
    REPLIED = 2
    FAILED = 3


@dataclass(frozen=True, slots=True)
class LookupResult:
    """A finished lookup's outcome."""

    closest: tuple[Contact, ...]
    """Up to k contacts that replied, nearest first."""
    value: bytes | None
    """The value found (VALUE mode), already checked against the key."""
    providers: tuple[Contact, ...]
    """Distinct providers found (PROVIDERS mode), in discovery order."""
    queried: int
    """How many peers were asked (a cost figure for tests and metrics)."""


class Lookup:
    """One iterative lookup for ``target``."""

    def __init__(
        self,
        self_id: bytes,
        target: bytes,
        mode: LookupMode,
        seeds: list[Contact],
        *,
        k: int = 20,
        alpha: int = 3,
        want_providers: int = 20,
    ) -> None:
        self.self_id = self_id
        self.target = target
        self.mode = mode
        self.k = k
        self.alpha = alpha
        self.want_providers = want_providers
        self._state: dict[bytes, _St] = {}
        self._contact: dict[bytes, Contact] = {}
        self.value: bytes | None = None
        self._providers: dict[bytes, Contact] = {}
        self.queried = 0
        self._add(seeds)

    def _add(self, contacts: tuple[Contact, ...] | list[Contact]) -> None:
        for c in contacts:
            if c.node_id != self.self_id and c.node_id not in self._state:
                self._state[c.node_id] = _St.NEW
                self._contact[c.node_id] = c

    def _nearest_eligible(self) -> list[bytes]:
        ids = [n for n, s in self._state.items() if s is not _St.FAILED]
        ids.sort(key=lambda n: distance(n, self.target))
        return ids[: self.k]

    @property
    def in_flight(self) -> int:
        """Queries handed out and not yet answered."""
        return sum(1 for s in self._state.values() if s is _St.IN_FLIGHT)

    @property
    def finished(self) -> bool:
        """True once the lookup has its answer (see the module docstring)."""
        if self.mode is LookupMode.VALUE and self.value is not None:
            return True
        if self.mode is LookupMode.PROVIDERS and len(self._providers) >= self.want_providers:
            return True
        near = self._nearest_eligible()
        return all(self._state[n] is _St.REPLIED for n in near) and self.in_flight == 0

    def next_queries(self) -> list[Contact]:
        """Contacts to query now (marks them in flight); empty when none is due."""
        if self.finished:
            return []
        out: list[Contact] = []
        budget = self.alpha - self.in_flight
        for n in self._nearest_eligible():
            if budget <= 0:
                break
            if self._state[n] is _St.NEW:
                self._state[n] = _St.IN_FLIGHT
                out.append(self._contact[n])
                budget -= 1
        self.queried += len(out)
        return out

    def on_reply(
        self,
        node_id: bytes,
        contacts: tuple[Contact, ...] = (),
        *,
        value: bytes | None = None,
        providers: tuple[Contact, ...] = (),
    ) -> None:
        """``node_id`` answered with closer ``contacts`` (and a checked value / providers)."""
        if self._state.get(node_id) is not _St.IN_FLIGHT:
            return
        self._state[node_id] = _St.REPLIED
        self._add(contacts)
        if value is not None and self.value is None:
            self.value = value
        for p in providers:
            self._providers.setdefault(p.node_id, p)

    def add_providers(self, providers: tuple[Contact, ...]) -> None:
        """Providers known before any query (e.g. from the local record store)."""
        for p in providers:
            self._providers.setdefault(p.node_id, p)

    def on_failure(self, node_id: bytes) -> None:
        """The query to ``node_id`` failed; never ask it again in this lookup."""
        if self._state.get(node_id) is _St.IN_FLIGHT:
            self._state[node_id] = _St.FAILED

    def result(self) -> LookupResult:
        """The outcome so far (final once :attr:`finished`)."""
        replied = [n for n, s in self._state.items() if s is _St.REPLIED]
        replied.sort(key=lambda n: distance(n, self.target))
        return LookupResult(
            closest=tuple(self._contact[n] for n in replied[: self.k]),
            value=self.value,
            providers=tuple(self._providers.values())[: self.want_providers],
            queried=self.queried,
        )
