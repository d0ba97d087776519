"""ReplyBudget: a reply is refused exactly when the unsent bytes already held plus it pass
the limit (never when nothing is held); streams drained by the library leave the count."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.transport.replybudget import ReplyBudget


def test_a_reply_past_the_limit_is_refused_until_the_backlog_drains() -> None:
    unsent: dict[int, int] = {}
    budget = ReplyBudget(100, local_bit=0)
    back = lambda s: unsent.get(s, 0)  # noqa: E731
    assert budget.admit(1, 80, back) and budget.admit(0, 10**9, back)  # 0: our own stream
    unsent[1] = 80  # the library holds it: the peer does not read
    assert budget.admit(5, 20, back) and budget.streams == 2
    unsent[5] = 20
    assert not budget.admit(9, 1, back)  # 100 held: one more byte passes the limit
    assert budget.held(back) == 100
    unsent[1] = 0  # the peer read the first reply
    assert budget.admit(9, 80, back) and budget.streams == 2  # stream 1 left the count
    unsent[9] = 80
    unsent[5] = unsent[9] = 0
    assert budget.held(back) == 0 and budget.streams == 0
    assert budget.admit(13, 10_000, back)  # nothing held: a reply over the limit still goes
    with pytest.raises(ValueError):
        ReplyBudget(-1, local_bit=0)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 300),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), max_size=30),
)
def test_admit_is_the_rule_on_any_sequence(limit: int, steps: list[tuple[int, int]]) -> None:
    """The model: a dict of the library's unsent bytes per stream; each step offers a
    reply of ``size`` bytes on a new stream and then the peer reads ``read`` bytes from
    the oldest streams first."""
    budget = ReplyBudget(limit, local_bit=0)
    unsent: dict[int, int] = {}
    back = lambda s: unsent.get(s, 0)  # noqa: E731
    for n, (size, read) in enumerate(steps):
        sid = 2 * n + 1  # a stream the peer opened (we are the client: local bit 0)
        assert budget.admit(2 * n, 10**9, back)  # one we opened carries no reply: always
        held = sum(unsent.values())
        ok = budget.admit(sid, size, back)
        assert ok is (held == 0 or held + size <= limit)
        if ok:
            unsent[sid] = size
        for s in sorted(unsent):
            take = min(read, unsent[s])
            unsent[s] -= take
            read -= take
        assert budget.held(back) == sum(unsent.values())
