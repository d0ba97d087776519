"""The pure per-sender rules: the selection rank (aged first, oldest first; then by fee)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zapstack.mempool.senders import Entry, select_rank

from .conftest import tx_view


def entry(fee: int, seq: int, arrived: float) -> Entry:
    v = tx_view(0, 0, fee)
    return Entry(v, v.tx_id, v.sender, seq, arrived)


def test_rank_of_fresh_and_aged_entries() -> None:
    assert select_rank(entry(7, 3, 1.0), now=2.0, max_age=1.0) == (1, -7, 3)  # waited == bound
    assert select_rank(entry(7, 3, 1.0), now=2.5, max_age=1.0) == (0, 1.0, 3)
    assert select_rank(entry(7, 3, 1.0), now=None, max_age=0.0) == (1, -7, 3)  # no clock


@given(
    a=st.tuples(st.integers(1, 9), st.floats(0, 10, allow_nan=False)),
    b=st.tuples(st.integers(1, 9), st.floats(0, 10, allow_nan=False)),
    now=st.floats(0, 20, allow_nan=False),
    max_age=st.floats(0, 5, allow_nan=False),
)
def test_rank_orders_like_the_rule(
    a: tuple[int, float], b: tuple[int, float], now: float, max_age: float
) -> None:
    """Pairwise: the documented rule, written as a comparison, agrees with the rank."""
    ea, eb = entry(a[0], 1, a[1]), entry(b[0], 2, b[1])
    aged_a, aged_b = now - ea.arrived > max_age, now - eb.arrived > max_age
    if aged_a != aged_b:
        a_first = aged_a
    elif aged_a:
        a_first = (ea.arrived, 1) < (eb.arrived, 2)
    else:
        a_first = ea.fee >= eb.fee  # equal fees: the earlier seq (a) first
    assert (select_rank(ea, now, max_age) < select_rank(eb, now, max_age)) == a_first
