"""The shared unwind contract helper catches what it promises to catch."""

from __future__ import annotations

import threading

import pytest

from zapstack.testing.unwind import UnwindContractError, check_unwind_contract


class Box:
    def __init__(self) -> None:
        self.items: list[int] = [1, 2]
        self.calls = 0
        self.lock = threading.Lock()


def good(box: Box) -> None:
    box.items.clear()


def raises_second_time(box: Box) -> None:
    box.calls += 1
    if box.calls > 1:
        raise RuntimeError("already unwound")
    box.items.clear()


def leaves_state(box: Box) -> None:
    box.items.pop() if box.items else None


def test_good_primitive_passes() -> None:
    assert check_unwind_contract({"full": lambda: (Box(), [])}, good, lambda b: b.items) == 1


@pytest.mark.parametrize("bad", [raises_second_time, leaves_state])
def test_violations_are_reported(bad: object) -> None:
    with pytest.raises(UnwindContractError, match="full"):
        check_unwind_contract({"full": lambda: (Box(), [])}, bad, lambda b: b.items)  # type: ignore[arg-type]


def test_race_is_checked() -> None:
    def once_only(box: Box) -> None:
        if not box.lock.acquire(blocking=False):
            raise RuntimeError("concurrent unwind")
        threading.Event().wait(0.01)
        box.items.clear()

    # sequential calls are fine (the lock is never released, so call 2 would fail) ...
    with pytest.raises(UnwindContractError):
        check_unwind_contract({"full": lambda: (Box(), [])}, once_only, lambda b: b.items)


def test_arguments_validated() -> None:
    with pytest.raises(ValueError):
        check_unwind_contract({"x": lambda: (Box(), [])}, good, lambda b: b.items, times=1)
    with pytest.raises(ValueError):
        check_unwind_contract({}, good, lambda b: b.items)
