"""The load process's counters (a window is the difference of two snapshots) and the
handshake by which the caller sets every process's times once all are up."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from zapstack.benchmarks import e2e_load
from zapstack.benchmarks.e2e_load import _diff, snapshot
from zapstack.devnet.loadgen import LoadStats

# a stand-in load process: says ready after a delay, then writes what it was told
_CHILD = """
import sys, time
time.sleep(float(sys.argv[1]))
print(sys.argv[2], flush=True)
open(sys.argv[3], "w").write(sys.stdin.readline())
"""


async def _spawn(delay: float, says: str, out: Path) -> asyncio.subprocess.Process:
    pipe = asyncio.subprocess.PIPE
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, str(delay), says, str(out), stdin=pipe, stdout=pipe
    )


def test_release_waits_for_the_slowest_process_then_sends_one_set_of_times(
    tmp_path: Path,
) -> None:
    async def go() -> tuple[float, float]:
        outs = [tmp_path / "a", tmp_path / "b"]
        kids = [await _spawn(0.0, "ready", outs[0]), await _spawn(0.8, "ready", outs[1])]
        started = time.monotonic()
        t0 = await e2e_load.release(kids)
        await e2e_load.send_times(kids, t0, t0 + 1, t0 + 3)
        for kid in kids:
            assert await kid.wait() == 0
        for out in outs:
            assert [float(x) for x in out.read_text().split()] == [t0, t0 + 1, t0 + 3]
        return started, t0

    started, t0 = asyncio.run(go())
    # T0 is set after the slow one is up (0.8 s: it signed ahead before saying ready)
    assert t0 >= started + 0.8


def test_release_refuses_a_process_that_never_says_ready(tmp_path: Path) -> None:
    async def go() -> None:
        kid = await _spawn(0.0, "oops", tmp_path / "x")
        try:
            await e2e_load.release([kid])
        finally:
            kid.kill()
            await kid.wait()

    with pytest.raises(RuntimeError, match="did not start"):
        asyncio.run(go())


def test_times_are_required_without_the_handshake(tmp_path: Path) -> None:
    base = ["--genesis", "g", "--first-user", "0", "--users", "1", "--rate", "1"]
    with pytest.raises(SystemExit) as exc:
        e2e_load.main([*base, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2  # argparse's usage error


def test_window_is_end_minus_start_and_drops_empty_codes() -> None:
    stats = LoadStats(sent=10, admitted=6, failed=1, rejected={"RATE_LIMITED": 3})
    before = snapshot(stats)
    stats.sent, stats.admitted, stats.failed = 25, 15, 1
    stats.rejected["RATE_LIMITED"] = 5
    stats.rejected["MEMPOOL_FULL"] = 4
    after = snapshot(stats)
    assert before["rejected"] == {"RATE_LIMITED": 3}  # a copy, not the live dict
    assert _diff(after, before) == {
        "sent": 15,
        "admitted": 9,
        "failed": 0,
        "rejected": {"RATE_LIMITED": 2, "MEMPOOL_FULL": 4},
    }
    assert _diff(after, after)["rejected"] == {}


def test_frames_are_signed_before_the_validators_are_dialed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing ahead blocks the event loop; done after the dial, it left the connections
    unserviced past the QUIC idle timeout (4 x 157,500 frames on a busy box) and every
    submit of that load failed.  The process now signs first, then dials."""
    calls: list[str] = []

    class Genesis:
        def __init__(self) -> None:
            self.raw = {"devnet_seed": "00"}
            self.addresses = ["a", "b"]

    class Load:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.peers: list[str] = []
            self.stats = LoadStats()
            self.sent_at: dict[bytes, float] = {}
            self.admitted_at: dict[bytes, float] = {}

        def presign(self, per_user: int, until: float, clock: object) -> int:
            calls.append("presign")
            return 0

        async def connect(self) -> None:
            calls.append("connect")
            self.peers = ["a", "b"]

        async def run(self, stop: asyncio.Event) -> None:
            await stop.wait()

        async def close(self) -> None:
            calls.append("close")

    monkeypatch.setattr(e2e_load, "load_genesis", lambda _path: Genesis())
    monkeypatch.setattr(e2e_load, "devnet_user", lambda _seed, i: i)
    monkeypatch.setattr(e2e_load, "LoadGenerator", Load)
    now = time.monotonic()
    args = [
        "--genesis", "g", "--first-user", "0", "--users", "2", "--rate", "1",
        "--start-at", str(now + 0.05), "--measure-at", str(now + 0.1),
        "--stop-at", str(now + 0.15), "--out", str(tmp_path / "o.json"),
    ]  # fmt: skip
    assert e2e_load.main(args) == 0
    assert calls == ["presign", "connect", "close"]
