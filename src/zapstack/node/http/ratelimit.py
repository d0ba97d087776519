"""Per-client token buckets: the HTTP API's rate limit (sans-IO, time passed in).

Contract
--------
* Each client key (the peer's IP address) has a bucket of ``burst`` tokens
  refilled at ``rate`` tokens per second; :meth:`RateLimiter.take` spends one
  and answers True, or answers False (the caller answers 429) when the bucket
  is empty.  ``now`` is any monotonic clock in seconds, passed in.
* Memory is bounded: at most ``max_clients`` buckets are kept; past that the
  least recently seen client is forgotten (it comes back with a full bucket,
  which only ever favours the client, never the limiter's bound).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets by client key (see the module contract)."""

    def __init__(self, rate: float, burst: int, *, max_clients: int = 10_000) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate > 0, burst >= 1 and max_clients >= 1 are required")
        self.rate = rate
        """Tokens added per second."""
        self.burst = burst
        """Bucket size: requests a quiet client may make at once."""
        self.max_clients = max_clients
        """Buckets kept at most."""
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str, now: float) -> bool:
        """Spend one token of ``client``'s bucket; False when it is empty."""
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` has a token again (0 when it has one)."""
        tokens, _ = self._buckets.get(client, (float(self.burst), 0.0))
        return max(0.0, (1.0 - tokens) / self.rate)

    def __len__(self) -> int:
        return len(self._buckets)
