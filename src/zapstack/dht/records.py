"""Bounded record stores (values, providers) and per-peer token buckets.

Contract
--------
* **Values** are content-addressed: a value is stored and returned only under
  ``key == sha256(value)``; the check runs on STORE and again on every read
  (a value that no longer matches is dropped, never served).  Values are
  1..``MAX_VALUE_BYTES`` bytes.  At most ``max_values`` records / ``max_bytes``
  bytes: when full, a new key closer (XOR) to this node than the farthest held
  key evicts it, otherwise the STORE is refused (``RATE_LIMITED``).
* **Providers**: per block hash at most ``k`` providers (most recently
  announced kept), at most ``max_provider_keys`` keys; records expire after
  ``ttl`` seconds of injected time.
* **Rate limits**: one token bucket per peer id (``rate`` tokens/s, burst
  ``burst``) on injected time; at most ``max_peers`` buckets are tracked (the
  least recently used is forgotten, which only ever *helps* a peer, so the
  table cannot be used to exhaust memory).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from zapstack.dht.ids import Contact, distance
from zapstack.dht.messages import MAX_VALUE_BYTES
from zapstack.errors import RemoteProtocolError, WireCode

__all__ = ["RECORD_TTL", "RateLimiter", "RecordStore"]

RECORD_TTL = 24 * 3600.0
"""Seconds a value or provider record lives unless re-published."""


@dataclass(slots=True)
class _Value:
    value: bytes
    expires: float


class RecordStore:
    """Value and provider records of one node."""

    def __init__(
        self,
        self_id: bytes,
        *,
        k: int = 20,
        ttl: float = RECORD_TTL,
        max_values: int = 4096,
        max_bytes: int = 64 * 1024 * 1024,
        max_provider_keys: int = 65536,
    ) -> None:
        self.self_id = self_id
        self.k = k
        self.ttl = ttl
        self.max_values = max_values
        self.max_bytes = max_bytes
        self.max_provider_keys = max_provider_keys
        self._values: dict[bytes, _Value] = {}
        self._bytes = 0
        self._providers: dict[bytes, OrderedDict[bytes, tuple[Contact, float]]] = {}

    # ------------------------------------------------------------ values

    def put_value(self, key: bytes, value: bytes, now: float) -> None:
        """Store ``value`` under ``key``; RemoteProtocolError if it is not sha256(value)."""
        if not 1 <= len(value) <= MAX_VALUE_BYTES:
            raise RemoteProtocolError("value size out of bounds", code=WireCode.BAD_LENGTH)
        if hashlib.sha256(value).digest() != key:
            raise RemoteProtocolError("key != sha256(value)", code=WireCode.BAD_FIELD)
        self._expire_values(now)
        old = self._values.pop(key, None)
        if old is not None:
            self._bytes -= len(old.value)
        while len(self._values) >= self.max_values or self._bytes + len(value) > self.max_bytes:
            far = max(self._values, key=lambda x: distance(x, self.self_id), default=None)
            if far is None or distance(far, self.self_id) <= distance(key, self.self_id):
                if old is not None:  # keep what we had
                    self._values[key] = old
                    self._bytes += len(old.value)
                raise RemoteProtocolError("record store full", code=WireCode.RATE_LIMITED)
            self._bytes -= len(self._values.pop(far).value)
        self._values[key] = _Value(value, now + self.ttl)
        self._bytes += len(value)

    def get_value(self, key: bytes, now: float) -> bytes | None:
        """The value under ``key`` if held, unexpired and still sha256-consistent."""
        rec = self._values.get(key)
        if rec is None:
            return None
        if rec.expires <= now or hashlib.sha256(rec.value).digest() != key:
            del self._values[key]
            self._bytes -= len(rec.value)
            return None
        return rec.value

    def _expire_values(self, now: float) -> None:
        for key in [k for k, r in self._values.items() if r.expires <= now]:
            self._bytes -= len(self._values.pop(key).value)

    @property
    def value_count(self) -> int:
        """Number of value records held (expired ones included until touched)."""
        return len(self._values)

    # ------------------------------------------------------------ providers

    def add_provider(self, key: bytes, provider: Contact, now: float) -> None:
        """Record that ``provider`` serves ``key`` (refreshes an existing record)."""
        provs = self._providers.get(key)
        if provs is None:
            self._expire_providers(now)
            if len(self._providers) >= self.max_provider_keys:
                raise RemoteProtocolError("provider table full", code=WireCode.RATE_LIMITED)
            provs = self._providers[key] = OrderedDict()
        provs.pop(provider.node_id, None)
        provs[provider.node_id] = (provider, now + self.ttl)
        while len(provs) > self.k:
            provs.popitem(last=False)

    def get_providers(self, key: bytes, now: float) -> list[Contact]:
        """Unexpired providers of ``key``, most recently announced first."""
        provs = self._providers.get(key)
        if provs is None:
            return []
        for nid in [n for n, (_, exp) in provs.items() if exp <= now]:
            del provs[nid]
        if not provs:
            del self._providers[key]
            return []
        return [c for c, _ in reversed(provs.values())]

    def _expire_providers(self, now: float) -> None:
        for key in list(self._providers):
            self.get_providers(key, now)


class RateLimiter:
    """Token bucket per peer on injected time."""

    def __init__(self, *, rate: float = 50.0, burst: float = 100.0, max_peers: int = 4096) -> None:
        self.rate = rate
        self.burst = burst
        self.max_peers = max_peers
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def allow(self, peer: bytes, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``peer``'s bucket; False (take nothing) if short."""
        tokens, last = self._buckets.pop(peer, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        ok = tokens >= cost
        if ok:
            tokens -= cost
        self._buckets[peer] = (tokens, now)
        while len(self._buckets) > self.max_peers:
            self._buckets.popitem(last=False)
        return ok
