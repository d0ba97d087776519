"""Token buckets against a model: the allowed count never exceeds burst + rate x elapsed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.node.http.ratelimit import RateLimiter


def test_a_quiet_client_gets_its_burst_then_waits() -> None:
    rl = RateLimiter(rate=2.0, burst=3)
    assert [rl.take("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert rl.retry_after("a") == pytest.approx(0.5)
    assert rl.take("b", 0.0)  # another client has its own bucket
    assert not rl.take("a", 0.4) and rl.take("a", 0.9)  # 0.5 s refills one token


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 5)), max_size=200),
    st.floats(0.1, 10),
    st.integers(1, 5),
)
def test_allowed_never_exceeds_the_bucket_model(
    steps: list[tuple[str, float]], rate: float, burst: int
) -> None:
    rl = RateLimiter(rate, burst)
    now, allowed, first = 0.0, dict.fromkeys("abc", 0), dict.fromkeys("abc", -1.0)
    for client, dt in steps:
        now += dt
        if first[client] < 0:
            first[client] = now
        allowed[client] += rl.take(client, now)
        assert allowed[client] <= burst + rate * (now - first[client]) + 1e-9


def test_memory_is_bounded_by_max_clients() -> None:
    rl = RateLimiter(1.0, 1, max_clients=2)
    for i in range(5):
        assert rl.take(str(i), 0.0)
    assert len(rl) == 2
    with pytest.raises(ValueError):
        RateLimiter(0, 1)
