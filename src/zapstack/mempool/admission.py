"""Bounded in-flight working set: credit for partially received tx buffers.

Theory of operation
-------------------
LP-0202 sizes the tx receive pipeline at ~12,800 in-flight buffers (its
table: 5 stages x 64 streams/peer x ~40 peers) and notes that the working set
is bounded by ``avg(tx size) x 12.8k`` (6.4 MiB at 500 B).  This controller
makes that bound hard instead of hoping for it.  Two kinds of credit:

* a **buffer slot** per stream, taken when the stream opens (``open``);
* **bytes**, reserved once the frame's declared total length is known
  (header bytes 8..11; ``reserve``).

A request that does not fit is queued and answered ``False``: the caller
tells the transport to *stop reading that stream* ("wait for credit"), so the
peer is held back by QUIC flow control instead of our memory growing.  Credit
comes back through :meth:`release` (the stream finished, was rejected, reset,
or its peer left), which grants queued requests in strict FIFO order while the
head fits, and returns the keys granted so the caller can resume them.  Strict
FIFO means a large reservation is never starved by small ones.  Slots and
bytes have separate queues: a slot holder waiting for bytes never waits behind
a stream waiting for a slot (that would deadlock once every slot holder did).

Deadlock freedom: a stream that holds its byte reservation can always finish
(its peer only has to send), and a stalled one is timed out by the receiver,
so credit always returns; when no stream holds bytes, the head of the byte
queue fits (any single reservation is <= ``MAX_TX_SIZE`` <= ``max_bytes``,
checked at construction).

Bound: in-flight bytes <= ``max_bytes`` + (streams waiting for byte credit) x
(bytes delivered before their length was known, i.e. one read chunk each).

:meth:`release` is idempotent (unknown or already released keys are no-ops).
Not thread-safe; owned by one receiver.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from zapstack.errors import LocalProtocolError
from zapstack.zap.schema import MAX_TX_SIZE

__all__ = ["AdmissionController"]

K = TypeVar("K", bound=Hashable)

DEFAULT_MAX_BUFFERS = 12_800
"""LP-0202's in-flight figure for the tx receive pipeline."""
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
"""Byte budget: 12.8k buffers of ~650 B (the spec's 6.4 MiB at 500 B, with headroom)."""


class AdmissionController(Generic[K]):
    """Counts buffer slots and reserved bytes; queues what does not fit (FIFO per kind)."""

    def __init__(
        self, *, max_buffers: int = DEFAULT_MAX_BUFFERS, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_buffers < 1 or max_bytes < MAX_TX_SIZE:
            raise LocalProtocolError(
                f"need max_buffers >= 1 and max_bytes >= MAX_TX_SIZE ({MAX_TX_SIZE})"
            )
        self.max_buffers = max_buffers
        self.max_bytes = max_bytes
        self._slots: set[K] = set()
        self._reserved: dict[K, int] = {}
        self._bytes = 0
        self._slot_queue: deque[tuple[K, int]] = deque()  # (key, ticket)
        self._byte_queue: deque[tuple[K, int, int]] = deque()  # (key, ticket, nbytes)
        self._waiting: dict[K, int] = {}  # key -> ticket of its live queue entry
        self._ticket = 0

    @property
    def buffers(self) -> int:
        """Buffer slots held."""
        return len(self._slots)

    @property
    def bytes_reserved(self) -> int:
        """Bytes reserved by streams holding a slot."""
        return self._bytes

    @property
    def waiting(self) -> int:
        """Requests queued for credit."""
        return len(self._waiting)

    def is_waiting(self, key: K) -> bool:
        """Whether ``key`` has a request queued."""
        return key in self._waiting

    def open(self, key: K) -> bool:
        """Take a buffer slot for a new stream; ``False`` = queued, wait."""
        if key in self._slots or key in self._waiting:
            raise LocalProtocolError(f"stream {key!r} already admitted")
        if not self._slot_queue and len(self._slots) < self.max_buffers:
            self._slots.add(key)
            return True
        self._slot_queue.append((key, self._enqueue(key)))
        return False

    def reserve(self, key: K, nbytes: int) -> bool:
        """Reserve ``nbytes`` for a stream holding a slot; ``False`` = queued, wait."""
        if key not in self._slots or key in self._reserved or key in self._waiting:
            raise LocalProtocolError(f"stream {key!r} cannot reserve now")
        if not 0 < nbytes <= MAX_TX_SIZE:
            raise LocalProtocolError(f"reservation of {nbytes} bytes out of range")
        if not self._byte_queue and self._bytes + nbytes <= self.max_bytes:
            self._grant_bytes(key, nbytes)
            return True
        self._byte_queue.append((key, self._enqueue(key), nbytes))
        return False

    def release(self, key: K) -> list[K]:
        """Return ``key``'s credit (or cancel its queued request); grant waiters.

        Returns the keys whose queued request was granted by this release:
        byte reservations first, then slots, each in FIFO order.  Idempotent.
        """
        self._waiting.pop(key, None)  # its queue entry is skipped lazily
        self._slots.discard(key)
        self._bytes -= self._reserved.pop(key, 0)
        return self._drain_bytes() + self._drain_slots()

    # -- internals ---------------------------------------------------------------
    def _enqueue(self, key: K) -> int:
        self._ticket += 1
        self._waiting[key] = self._ticket
        return self._ticket

    def _grant_bytes(self, key: K, nbytes: int) -> None:
        self._reserved[key] = nbytes
        self._bytes += nbytes

    def _drain_bytes(self) -> list[K]:
        granted: list[K] = []
        q = self._byte_queue
        while q:
            key, ticket, nbytes = q[0]
            if self._waiting.get(key) == ticket:
                if self._bytes + nbytes > self.max_bytes:
                    break
                self._grant_bytes(key, nbytes)
                del self._waiting[key]
                granted.append(key)
            q.popleft()
        return granted

    def _drain_slots(self) -> list[K]:
        granted: list[K] = []
        q = self._slot_queue
        while q:
            key, ticket = q[0]
            if self._waiting.get(key) == ticket:
                if len(self._slots) >= self.max_buffers:
                    break
                self._slots.add(key)
                del self._waiting[key]
                granted.append(key)
            q.popleft()
        return granted
