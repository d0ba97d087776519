"""A public test kit: mock clock, seeded randomness helpers, contract suites.

* :mod:`~zapstack.testing.clock` -- :class:`MockClock`.
* :mod:`~zapstack.testing.loopback` -- :class:`LoopbackPair`: two transport
  sessions wired back to back in memory.
* :mod:`~zapstack.testing.loopnet` -- :class:`LoopNet`: a bootstrap client and
  N servers over loopback pairs (import explicitly).
* :mod:`~zapstack.testing.unwind` -- the shared unwind-primitive contract suite.

Tests of zapstack and of projects built on it use these instead of real time
and global randomness (STYLE.md principle 9).
"""

from zapstack.testing.clock import MockClock

__all__ = ["MockClock"]
