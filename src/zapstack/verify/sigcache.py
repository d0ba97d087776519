"""Verify each signature once per node: a bounded cache of verified signatures.

A tx's signature is checked at admission (TX_SUBMIT), or when it arrives by
gossip, and again when a block holding it is verified: on a validator that is
every tx twice, the largest single CPU cost of a running node (issue 14's
profile: 25-28 %).  :class:`VerifiedCache` remembers the pairs that verified,
and block verification skips them.

Key: ``tx id || sha256(signature)``.  The tx id is the transcript digest, which
covers every signed byte including the public key, and it is exactly the
message the signature signs; so a (tx id, signature) pair fixes all three
inputs of verification, and a pair that verified once verifies again (the
rule of zap.md §4.1 is deterministic).  A tx with the same id but other
signature bytes is a different key.  Only successes are stored: a failure is
not cached, so an attacker cannot poison the cache.

Bounded: at most ``capacity`` keys (default 262 144, about 20 MiB), the oldest
insertion evicted first (FIFO: a tx is looked up once or twice, recency buys
nothing).  Thread-safe: one lock around a dict, held for O(1) operations only.
"""

from __future__ import annotations

import hashlib
import threading

from zapstack.errors import LocalProtocolError
from zapstack.zap.views import TxView

__all__ = ["VerifiedCache", "cache_key"]


def cache_key(tx: TxView) -> bytes:
    """``tx id || sha256(signature bytes)`` (64 bytes)."""
    return tx.digest + hashlib.sha256(tx.signature).digest()


class VerifiedCache:
    """A bounded, thread-safe set of verified (tx id, signature) pairs."""

    def __init__(self, capacity: int = 1 << 18) -> None:
        if capacity < 1:
            raise LocalProtocolError("cache capacity must be >= 1")
        self.capacity = capacity
        """Keys held at most."""
        self._keys: dict[bytes, None] = {}  # insertion-ordered: the first is the oldest
        self._lock = threading.Lock()
        self.hits = 0
        """Lookups that found a verified pair (a verify saved)."""
        self.misses = 0
        """Lookups that did not."""

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, tx: TxView) -> None:
        """Record that ``tx``'s signature verified on this node."""
        self.add_key(cache_key(tx))

    def add_key(self, key: bytes) -> None:
        """:meth:`add` for a precomputed :func:`cache_key`."""
        with self._lock:
            if key in self._keys:
                return
            if len(self._keys) >= self.capacity:
                del self._keys[next(iter(self._keys))]
            self._keys[key] = None

    def verified(self, tx: TxView) -> bool:
        """True iff ``tx``'s (id, signature) pair verified here before."""
        return self.has_key(cache_key(tx))

    def has_key(self, key: bytes) -> bool:
        """:meth:`verified` for a precomputed :func:`cache_key`."""
        with self._lock:
            if key in self._keys:
                self.hits += 1
                return True
            self.misses += 1
            return False
