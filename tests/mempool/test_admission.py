"""AdmissionController: hard caps, FIFO grants, idempotent release, model check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.errors import LocalProtocolError
from zapstack.mempool import AdmissionController
from zapstack.zap import MAX_TX_SIZE


def test_slots_wait_and_resume_in_fifo_order() -> None:
    ac: AdmissionController[int] = AdmissionController(max_buffers=2, max_bytes=MAX_TX_SIZE)
    assert ac.open(1) and ac.open(2)
    assert not ac.open(3) and not ac.open(4)
    assert ac.buffers == 2 and ac.waiting == 2
    assert ac.release(1) == [3]
    assert ac.release(1) == []  # idempotent
    assert ac.release(2) == [4]
    assert ac.buffers == 2 and ac.waiting == 0


def test_bytes_wait_until_released_and_fifo_blocks_small_behind_large() -> None:
    ac: AdmissionController[int] = AdmissionController(max_buffers=10, max_bytes=MAX_TX_SIZE)
    for k in (1, 2, 3):
        assert ac.open(k)
    assert ac.reserve(1, MAX_TX_SIZE - 100)
    assert not ac.reserve(2, 200)  # does not fit
    assert not ac.reserve(3, 50)  # would fit, but FIFO: waits behind 2
    assert ac.open(4)  # slots are a separate queue
    assert ac.release(1) == [2, 3]
    assert ac.bytes_reserved == 250


def test_byte_waiters_never_queue_behind_slot_waiters() -> None:
    ac: AdmissionController[int] = AdmissionController(max_buffers=2, max_bytes=MAX_TX_SIZE)
    assert ac.open(1) and ac.open(2)
    assert not ac.open(3)  # waits for a slot
    assert ac.reserve(1, 100) and ac.reserve(2, 100)  # slot holders still get bytes
    assert ac.release(1) == [3]


def test_cancelled_waiter_is_skipped() -> None:
    ac: AdmissionController[int] = AdmissionController(max_buffers=1, max_bytes=MAX_TX_SIZE)
    assert ac.open(1)
    assert not ac.open(2) and not ac.open(3)
    assert ac.release(2) == []  # peer gave up while waiting
    assert not ac.is_waiting(2)
    assert ac.release(1) == [3]


def test_misuse_is_a_local_error() -> None:
    ac: AdmissionController[int] = AdmissionController()
    with pytest.raises(LocalProtocolError):
        ac.reserve(1, 10)  # no slot
    assert ac.open(1)
    with pytest.raises(LocalProtocolError):
        ac.open(1)
    with pytest.raises(LocalProtocolError):
        ac.reserve(1, MAX_TX_SIZE + 1)
    with pytest.raises(LocalProtocolError):
        AdmissionController(max_bytes=100)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["open", "reserve", "release"]),
            st.integers(0, 7),
            st.integers(1, 20_000),
        ),
        max_size=80,
    )
)
def test_caps_never_exceeded(program: list[tuple[str, int, int]]) -> None:
    ac: AdmissionController[int] = AdmissionController(max_buffers=3, max_bytes=40_000)
    held: set[int] = set()
    reserved: dict[int, int] = {}
    waiting: list[int] = []
    for op, k, n in program:
        if op == "open" and k not in held and k not in waiting:
            if ac.open(k):
                held.add(k)
            else:
                waiting.append(k)
        elif op == "reserve" and k in held and k not in reserved and k not in waiting:
            if ac.reserve(k, n):
                reserved[k] = n
            else:
                waiting.append(k)
                reserved[k] = n  # granted later
        elif op == "release":
            granted = ac.release(k)
            if k in waiting:
                waiting.remove(k)
            if k not in held:
                reserved.pop(k, None)
            held.discard(k)
            reserved.pop(k, None)
            assert granted == waiting[: len(granted)]  # strict FIFO
            for g in granted:
                waiting.remove(g)
                held.add(g)
        assert ac.buffers == len(held) <= 3
        assert ac.bytes_reserved == sum(v for key, v in reserved.items() if key not in waiting)
        assert ac.bytes_reserved <= 40_000
        assert ac.waiting == len(waiting)
