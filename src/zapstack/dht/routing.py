"""Kademlia routing table: 256 k-buckets over the XOR metric, time injected.

Theory of operation
-------------------
* Bucket ``i`` holds up to ``k`` contacts at distance ``[2**i, 2**(i+1))``,
  least recently seen first.  :meth:`RoutingTable.seen` is called whenever a
  peer proves it is alive (it answered us, or it sent us an authenticated
  request): a known contact moves to the tail; a new one is appended if the
  bucket has room, otherwise it goes to the bucket's bounded *replacement
  cache* (most recent last).  Live old contacts are never evicted for new
  ones (Kademlia's resistance to flushing).
* :meth:`RoutingTable.failed` records an unanswered RPC.  After
  ``max_failures`` consecutive failures the contact is removed and the most
  recently seen replacement is promoted.  Removal is idempotent.
* A bucket is *stale* when nothing in its range was seen or looked up for
  ``refresh_interval`` seconds; :meth:`RoutingTable.refresh_targets` returns a
  random id inside each stale bucket from the nearest occupied bucket out to
  bucket 255 (nearer buckets are empty ranges in practice; this is libp2p's
  "up to the longest common prefix" rule) and marks them refreshed.
* Nothing here does I/O; ``now`` is always a parameter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from zapstack.dht.ids import ID_BITS, Contact, bucket_index, distance, random_id_in_bucket
from zapstack.errors import LocalProtocolError

__all__ = ["REFRESH_INTERVAL", "K", "RoutingTable"]

K = 20
"""Bucket size and replication factor (LP-201 standard parameter)."""
REFRESH_INTERVAL = 3600.0
"""Seconds after which an untouched bucket is refreshed by a lookup."""


@dataclass(slots=True)
class _Entry:
    contact: Contact
    last_seen: float
    failures: int = 0


@dataclass(slots=True)
class _Bucket:
    entries: list[_Entry] = field(default_factory=list)
    replacements: list[_Entry] = field(default_factory=list)
    touched: float = 0.0


class RoutingTable:
    """The k-buckets of node ``self_id``."""

    def __init__(
        self,
        self_id: bytes,
        *,
        k: int = K,
        max_failures: int = 2,
        refresh_interval: float = REFRESH_INTERVAL,
        now: float = 0.0,
    ) -> None:
        self.self_id = self_id
        self.k = k
        self.max_failures = max_failures
        self.refresh_interval = refresh_interval
        self._buckets = [_Bucket(touched=now) for _ in range(ID_BITS)]

    def __len__(self) -> int:
        return sum(len(b.entries) for b in self._buckets)

    def __contains__(self, node_id: object) -> bool:
        if not isinstance(node_id, bytes) or node_id == self.self_id:
            return False
        b = self._buckets[bucket_index(self.self_id, node_id)]
        return any(e.contact.node_id == node_id for e in b.entries)

    def _bucket(self, node_id: bytes) -> _Bucket:
        i = bucket_index(self.self_id, node_id)
        if i < 0:
            raise LocalProtocolError("a node never stores itself")
        return self._buckets[i]

    def seen(self, contact: Contact, now: float) -> None:
        """``contact`` proved alive at ``now``: insert or refresh it."""
        if contact.node_id == self.self_id:
            return
        b = self._bucket(contact.node_id)
        b.touched = now
        for i, e in enumerate(b.entries):
            if e.contact.node_id == contact.node_id:
                del b.entries[i]
                b.entries.append(_Entry(contact, now))
                return
        if len(b.entries) < self.k:
            b.entries.append(_Entry(contact, now))
            return
        b.replacements = [e for e in b.replacements if e.contact.node_id != contact.node_id]
        b.replacements.append(_Entry(contact, now))
        del b.replacements[: -self.k]

    def failed(self, node_id: bytes) -> None:
        """An RPC to ``node_id`` went unanswered; evict after ``max_failures``."""
        if node_id == self.self_id:
            return
        b = self._bucket(node_id)
        for i, e in enumerate(b.entries):
            if e.contact.node_id == node_id:
                e.failures += 1
                if e.failures >= self.max_failures:
                    del b.entries[i]
                    if b.replacements:
                        b.entries.append(b.replacements.pop())
                return
        b.replacements = [e for e in b.replacements if e.contact.node_id != node_id]

    def remove(self, node_id: bytes) -> None:
        """Drop ``node_id`` now (e.g. it broke the protocol).  Idempotent."""
        if node_id == self.self_id:
            return
        b = self._bucket(node_id)
        before = len(b.entries)
        b.entries = [e for e in b.entries if e.contact.node_id != node_id]
        b.replacements = [e for e in b.replacements if e.contact.node_id != node_id]
        if len(b.entries) < before and b.replacements:
            b.entries.append(b.replacements.pop())

    def closest(self, target: bytes, n: int | None = None) -> list[Contact]:
        """Up to ``n`` (default k) known contacts nearest ``target``, nearest first."""
        n = self.k if n is None else n
        allc = [e.contact for b in self._buckets for e in b.entries]
        allc.sort(key=lambda c: distance(c.node_id, target))
        return allc[:n]

    def touch(self, target: bytes, now: float) -> None:
        """A lookup for ``target`` ran at ``now``: its bucket is fresh."""
        if target != self.self_id:
            self._bucket(target).touched = now

    def refresh_targets(self, now: float, rng: random.Random) -> list[bytes]:
        """Random ids in every stale bucket from the nearest occupied one outwards."""
        occupied = [i for i, b in enumerate(self._buckets) if b.entries]
        if not occupied:
            return []
        out: list[bytes] = []
        for i in range(min(occupied), ID_BITS):
            b = self._buckets[i]
            if now - b.touched >= self.refresh_interval:
                b.touched = now
                out.append(random_id_in_bucket(self.self_id, i, rng))
        return out

    def contacts(self) -> list[Contact]:
        """Every contact in the table (bucket order)."""
        return [e.contact for b in self._buckets for e in b.entries]
