"""ClientDriver.wait: checked when the pump passes the client's output on, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from zapstack.node import bootstrap_driver
from zapstack.node.bootstrap_driver import ClientDriver
from zapstack.transport.bindings import run_bounded


class _QuietClient:
    """The part of a BootstrapClient the pump reads: nothing to do."""

    def next_command(self) -> None:
        return None

    def next_event(self) -> None:
        return None


def _driver() -> ClientDriver:
    return ClientDriver(_QuietClient())  # type: ignore[arg-type]


def _run(main: Callable[[], Any]) -> Any:
    return run_bounded(main(), 10)


def test_a_predicate_that_holds_returns_at_once() -> None:
    async def main() -> bool:
        return await _driver().wait(lambda: True, 0.0)

    assert _run(main) is True


def test_nothing_happening_times_out() -> None:
    async def main() -> tuple[bool, float]:
        driver = _driver()
        t0 = driver.now()
        ok = await driver.wait(lambda: False, 0.05)
        return ok, driver.now() - t0

    ok, waited = _run(main)
    assert ok is False and waited >= 0.05 - 1e-9  # clock readings: float rounding


def test_the_pumps_pass_wakes_a_waiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the periodic re-check pushed out of reach, only the pump's pass (``_flush``,
    after the client handled reply bytes) can wake the waiter."""
    monkeypatch.setattr(bootstrap_driver, "WAIT_RECHECK_S", 3600.0)
    done: list[bool] = []

    async def main() -> bool:
        driver = _driver()
        waiter = asyncio.ensure_future(driver.wait(lambda: bool(done), 3600.0))
        await asyncio.sleep(0)  # the waiter checks (False) and sleeps on the event
        assert not waiter.done()
        done.append(True)
        driver._flush()
        return await asyncio.wait_for(waiter, 5.0)

    assert _run(main) is True
