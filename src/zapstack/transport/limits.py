"""Per-peer resource bounds on inbound streams: a sans-IO accountant.

Theory of operation
-------------------
A hostile peer can make a receiver hold memory three ways: one huge stream,
many unfinished streams, or streams that trickle forever (slowloris).  A
:class:`LimitPolicy` (one per endpoint) states, per stream type, the bounds a
peer-opened stream must keep (:class:`StreamLimit`), plus one memory budget
per peer across all its unfinished streams.  A :class:`PeerLimits` (one per
connection) is the accountant: the session reports what happens and gets back
either ``None`` (keep going) or a :class:`Breach` (close the connection with
``breach.code``).  It never does IO and never reads a clock.

=====================  ===========================================  =========
session reports        when                                         may break
=====================  ===========================================  =========
``opened``             a peer stream's type byte landed             PRIVILEGED
``authenticated``      the peer's HELLO verified                    PRIVILEGED
``received``           content bytes landed (before buffering)      SIZE, BUDGET
``ended``              the stream's receiving half ended (any way)  --
``check``              periodically                                 RATE, DEADLINE
=====================  ===========================================  =========

* **SIZE** -- a stream's content (the bytes after its type byte) may not
  exceed ``max_bytes``; checked as the bytes arrive, so the byte that crosses
  the bound is never buffered.
* **PRIVILEGED** -- a ``validators_only`` type opened by a peer whose node id
  is not in ``policy.validators``: refused on its type byte, before any
  content is buffered (a peer still unauthenticated is judged when its HELLO
  verifies; until then the session holds at most its small pre-HELLO budget).
* **BUDGET** -- the sum of content bytes of the peer's unfinished streams may
  not exceed its budget (``policy.validator_budget`` for a validator, else
  ``policy.peer_budget``; a finished or reset stream returns its
  bytes: past FIN the message belongs to its pipeline's own bounds).
* **RATE** -- after ``grace`` seconds an unfinished stream must have received
  at least ``min_rate * (age - grace)`` bytes (one byte every 3 s never keeps
  a stream open).
* **DEADLINE** -- an unfinished stream older than ``deadline`` seconds.

A type with no row in ``policy.limits`` is unbounded here (its handler bounds
it); the node's table (``zapstack.node.limits``) has a row for every type it
serves.  Every method is idempotent for unknown or ended streams.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from zapstack.errors import WireCode
from zapstack.transport.streams import StreamType

__all__ = ["RULE_CODES", "UNBOUNDED", "Breach", "LimitPolicy", "PeerLimits", "Rule", "StreamLimit"]


class Rule(enum.Enum):
    """Which bound a peer broke."""

    SIZE = "size"
    PRIVILEGED = "privileged"
    BUDGET = "budget"
    RATE = "rate"
    DEADLINE = "deadline"


RULE_CODES: dict[Rule, WireCode] = {
    Rule.SIZE: WireCode.BAD_LENGTH,
    Rule.PRIVILEGED: WireCode.STREAM_PROTOCOL_VIOLATION,
    Rule.BUDGET: WireCode.RATE_LIMITED,
    Rule.RATE: WireCode.TIMEOUT,
    Rule.DEADLINE: WireCode.TIMEOUT,
}
"""Rule -> the CONNECTION_CLOSE code the peer is disconnected with."""


@dataclass(frozen=True, slots=True)
class StreamLimit:
    """The bounds of one stream type (content = the bytes after the type byte)."""

    max_bytes: int
    """Most content bytes a stream of this type may carry."""
    validators_only: bool = False
    """Only a peer in ``LimitPolicy.validators`` may open it."""
    min_rate: float = 1024.0
    """Bytes per second a stream must average once ``grace`` has passed."""
    grace: float = 5.0
    """Seconds after the open before ``min_rate`` applies."""
    deadline: float = 30.0
    """Seconds from the open by which the stream must have ended."""


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """An endpoint's bounds on every peer-opened stream."""

    limits: Mapping[StreamType, StreamLimit]
    """Stream type -> its bounds (a type not here is unbounded at this layer)."""
    peer_budget: int
    """Most content bytes of one peer's unfinished streams, all types together."""
    validator_budget: int = 0
    """The same for a peer in ``validators`` (``0``: ``peer_budget``)."""
    validators: frozenset[bytes] = field(default_factory=frozenset)
    """Node ids allowed to open ``validators_only`` types."""
    check_interval: float = 0.5
    """Seconds between the adapter's :meth:`PeerLimits.check` calls."""


UNBOUNDED = LimitPolicy({}, peer_budget=1 << 62)
"""The policy of an endpoint that sets none: no stream type is bounded here."""


@dataclass(frozen=True, slots=True)
class Breach:
    """A verdict: the peer broke ``rule`` on ``stream_id``; disconnect it."""

    rule: Rule
    """The bound broken."""
    stream_id: int
    """The stream that broke it."""
    stream_type: StreamType
    """Its type."""
    code: WireCode
    """CONNECTION_CLOSE code (``RULE_CODES[rule]``)."""
    detail: str
    """Human-readable numbers (for the log and the close reason)."""


@dataclass(slots=True)
class _Open:
    stream_type: StreamType
    limit: StreamLimit
    opened_at: float
    received: int = 0


class PeerLimits:
    """The accountant of one connection's peer-opened streams.  See the module docstring."""

    def __init__(self, policy: LimitPolicy, peer: bytes = b"") -> None:
        self.policy = policy
        self.peer = peer
        """The peer's node id once known (``b""`` before its HELLO verifies)."""
        self.held = 0
        """Content bytes of unfinished streams (what the budget bounds)."""
        self._open: dict[int, _Open] = {}

    def _breach(self, rule: Rule, stream_id: int, s: _Open, detail: str) -> Breach:
        return Breach(rule, stream_id, s.stream_type, RULE_CODES[rule], detail)

    def _privileged(self, stream_id: int, s: _Open) -> Breach | None:
        if s.limit.validators_only and self.peer and self.peer not in self.policy.validators:
            return self._breach(
                Rule.PRIVILEGED, stream_id, s, f"{s.stream_type.name} from a non-validator"
            )
        return None

    def opened(self, stream_id: int, stream_type: StreamType, now: float) -> Breach | None:
        """A peer stream's type byte landed."""
        limit = self.policy.limits.get(stream_type)
        if limit is None or stream_id in self._open:
            return None
        s = self._open[stream_id] = _Open(stream_type, limit, now)
        return self._privileged(stream_id, s)

    def authenticated(self, peer: bytes) -> Breach | None:
        """The peer's HELLO verified: judge the streams it opened before."""
        self.peer = peer
        for stream_id, s in sorted(self._open.items()):
            breach = self._privileged(stream_id, s)
            if breach is not None:
                return breach
        return None

    def received(self, stream_id: int, n: int, now: float) -> Breach | None:
        """``n`` content bytes landed on ``stream_id`` (call before buffering them)."""
        s = self._open.get(stream_id)
        if s is None or n <= 0:
            return None
        if s.received + n > s.limit.max_bytes:
            return self._breach(
                Rule.SIZE, stream_id, s, f"{s.received + n} > {s.limit.max_bytes} bytes"
            )
        budget = self.budget
        if self.held + n > budget:
            return self._breach(Rule.BUDGET, stream_id, s, f"{self.held + n} > {budget} held")
        s.received += n
        self.held += n
        return self._privileged(stream_id, s)

    def ended(self, stream_id: int) -> None:
        """The stream's receiving half ended (FIN, reset, stopped, aborted)."""
        s = self._open.pop(stream_id, None)
        if s is not None:
            self.held -= s.received

    def check(self, now: float) -> Breach | None:
        """The first unfinished stream that is too slow or too old, if any."""
        for stream_id, s in sorted(self._open.items()):
            age = now - s.opened_at
            if age > s.limit.deadline:
                return self._breach(
                    Rule.DEADLINE, stream_id, s, f"open {age:.1f} s > {s.limit.deadline} s"
                )
            owed = s.limit.min_rate * (age - s.limit.grace)
            if s.received < owed:
                return self._breach(Rule.RATE, stream_id, s, f"{s.received} bytes in {age:.1f} s")
        return None

    @property
    def budget(self) -> int:
        """This peer's budget: the validator budget once it is known to be one."""
        p = self.policy
        if p.validator_budget and self.peer and self.peer in p.validators:
            return p.validator_budget
        return p.peer_budget

    @property
    def streams(self) -> int:
        """Unfinished peer streams being accounted."""
        return len(self._open)
