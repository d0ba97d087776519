"""A public test kit: mock clock, seeded randomness helpers, contract suites.

Tests of zapstack and of projects built on it use these instead of real time
and global randomness (STYLE.md principle 9).
"""

from zapstack.testing.clock import MockClock

__all__ = ["MockClock"]
