"""ClientDriver.wait: checked when the pump passes the client's output on, bounded; the
requests peers refused, counted by stream type and code."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from zapstack.bootstrap.events import OpenRequest
from zapstack.errors import WireCode
from zapstack.node import bootstrap_driver
from zapstack.node.bootstrap_driver import ClientDriver
from zapstack.transport.bindings import run_bounded
from zapstack.transport.events import End
from zapstack.transport.streams import StreamType


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


class _Recorder:
    """A stream handler that records what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def on_data(self, data: bytes) -> tuple[()]:
        self.calls.append(("data", data))
        return ()

    def on_end(self) -> tuple[()]:
        self.calls.append(("end", None))
        return ()

    def on_terminated(self, end: End, code: int | None) -> None:
        self.calls.append(("terminated", (end, code)))


@pytest.mark.parametrize(
    ("end", "code", "counted"),
    [
        (End.RESET, WireCode.NOT_FOUND, [WireCode.NOT_FOUND]),  # the peer refused it
        (End.STOPPED, WireCode.RATE_LIMITED, [WireCode.RATE_LIMITED]),
        (End.RESET, None, [0]),
        (End.ABORTED, None, []),  # the connection ended: not a refusal
        (End.CANCELLED, 0x10, []),  # we cancelled it
        (End.REJECTED, 0x10, []),
    ],
)
def test_a_peers_reset_or_stop_is_counted_as_a_refusal(
    end: End, code: int | None, counted: list[int]
) -> None:
    inner = _Recorder()
    kicks: list[int] = []
    seen: list[int] = []
    kick = bootstrap_driver._Kick(inner, lambda: kicks.append(1), seen.append)
    kick.on_data(b"x")
    kick.on_terminated(end, code)
    assert seen == counted
    assert inner.calls == [("data", b"x"), ("terminated", (end, code))] and len(kicks) == 2


def test_the_driver_counts_refusals_by_stream_type_and_code() -> None:
    driver = _driver()
    driver._refused(StreamType.STATE_CHUNK, WireCode.NOT_FOUND)
    driver._refused(StreamType.STATE_CHUNK, WireCode.NOT_FOUND)
    driver._refused(StreamType.HEADER_RANGE, WireCode.RATE_LIMITED)
    assert driver.refused == {
        (StreamType.STATE_CHUNK, WireCode.NOT_FOUND): 2,
        (StreamType.HEADER_RANGE, WireCode.RATE_LIMITED): 1,
    }


class _ResetClient(_QuietClient):
    """Takes the reset a request's reply handler reports."""

    def __init__(self) -> None:
        self.resets: list[tuple[int, int]] = []

    def response_reset(self, req_id: int, code: int, now: float) -> None:
        self.resets.append((req_id, code))


class _Out:
    stream_id = 4

    async def finish(self, data: bytes) -> None:
        return None


class _Peer:
    """A connection whose every request the peer answers with a reset of ``code``."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.session = SimpleNamespace(closed=False)

    async def open_stream(self, stream_type: StreamType, handler: Any) -> _Out:
        handler.on_terminated(End.RESET, self.code)
        return _Out()


def test_a_request_the_peer_resets_is_counted_and_reaches_the_client() -> None:
    client = _ResetClient()

    async def main() -> Counter[tuple[StreamType, int]]:
        driver = ClientDriver(client)  # type: ignore[arg-type]
        driver.peers[b"P"] = _Peer(WireCode.NOT_FOUND)  # type: ignore[assignment]
        cmd = OpenRequest(7, b"P", StreamType.STATE_CHUNK, b"req")
        await driver._open(cmd)
        await driver._open(OpenRequest(8, b"P", StreamType.STATE_CHUNK, b"req"))
        return driver.refused

    refused = _run(main)
    assert refused == {(StreamType.STATE_CHUNK, WireCode.NOT_FOUND): 2}
    assert client.resets == [(7, WireCode.NOT_FOUND), (8, WireCode.NOT_FOUND)]
