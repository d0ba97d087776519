"""The bootstrap pipeline in the running node, over real QUIC (qh3, 127.0.0.1).

A 4-validator devnet (separate processes) finalizes blocks under load; then
validator 3 is SIGKILLed, its data dir (ZapDB + block store) wiped, and it is
restarted with ``zap node --state-sync``: it downloads the state of a recent
finalized block in verified chunks from several peers, commits it, follows
the live blocks and votes again.  Every validator ends at the halt height with
the same head and state root, and the wiped one holds no block below its sync
target (it never replayed history)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from zapstack.bootstrap.events import NO_PROGRESS, StateProgress, TargetChosen
from zapstack.devnet.loadgen import LoadGenerator
from zapstack.devnet.processes import free_port_base, read_status, spawn_node
from zapstack.errors import WireCode, ZapError
from zapstack.node import sync as sync_mod
from zapstack.node.genesis import load_genesis, make_devnet
from zapstack.node.syncwatch import SyncWatch
from zapstack.transport.bindings import run_bounded
from zapstack.transport.streams import StreamType

HALT = 9
WIPED = 3


def _wait(homes: list[Path], pred: Any, timeout: float) -> dict[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    statuses: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        statuses = {i: s for i, h in enumerate(homes) if (s := read_status(h)) is not None}
        if pred(statuses):
            return statuses
        time.sleep(0.2)
    raise AssertionError(f"devnet condition not reached in {timeout}s: {statuses}")


def _txs_final_at_height_3(st: dict[int, dict[str, Any]]) -> bool:
    """Every validator is at height >= 3 and some finalized block holds txs (the state
    then has entries beyond genesis: the proposers' fee accounts; the sync checks it)."""
    if len(st) < 4 or min(s["height"] for s in st.values()) < 3:
        return False
    return any(r["txs"] > 0 for s in st.values() for r in s["recent"])


def test_wiped_validator_state_syncs_follows_and_agrees(tmp_path: Path) -> None:
    base = free_port_base(4)
    homes = make_devnet(tmp_path / "net", 4, base_port=base)
    genesis = load_genesis(tmp_path / "net" / "genesis.json")
    procs: dict[int, subprocess.Popen[bytes]] = {}
    load = LoadGenerator(genesis, rate=80)
    stop = asyncio.Event()

    async def drive() -> None:
        # the load generator dials once: wait until every node is up and listening
        await asyncio.to_thread(_wait, homes, lambda st: len(st) == 4, 60)
        await load.connect()
        task = asyncio.create_task(load.run(stop))
        try:
            await asyncio.to_thread(_wait, homes, _txs_final_at_height_3, 60)
            # validator 3: killed, data dir wiped, restarted with --state-sync
            procs[WIPED].send_signal(signal.SIGKILL)
            procs[WIPED].wait(10)
            for sub in ("db", "blocks"):
                shutil.rmtree(homes[WIPED] / sub)
            (homes[WIPED] / "status.json").unlink(missing_ok=True)
            procs[WIPED] = spawn_node(homes[WIPED], halt_height=HALT, state_sync=True)
            await asyncio.to_thread(
                _wait, homes, lambda st: WIPED in st and st[WIPED]["sync"].get("chunks"), 60
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            await load.close()

    try:
        for i, h in enumerate(homes):
            procs[i] = spawn_node(h, halt_height=HALT)
        run_bounded(drive(), 130)
        final = _wait(homes, lambda st: len(st) == 4 and all(s["halted"] for s in st.values()), 90)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    sync = final[WIPED]["sync"]
    target = sync["height"]
    print(f"state sync: {sync}")
    assert target >= 3 and sync["chunks"] == 256 and sync["entries"] > 64
    assert {s["height"] for s in final.values()} == {HALT}
    assert len({s["state_root"] for s in final.values()}) == 1
    assert len({s["head"] for s in final.values()}) == 1
    blocks = homes[WIPED] / "blocks"
    held = sorted(int(p.stem) for p in blocks.glob("*.blk"))
    assert held[0] == target and held[-1] == HALT  # synced at target, followed the rest live
    assert not (blocks / f"{1:012d}.blk").exists() or target == 1
    assert sync["peers"] == 3 and sync["chunk_peers"] >= 2  # chunks came from several peers


# ---------------------------------------------------------------- the progress bound


class _Client:
    """A bootstrap client that verifies one more chunk every ``every``-th poll (never, with
    0) and is done after ``total`` chunks."""

    def __init__(self, total: int, every: int) -> None:
        self.total, self.every, self.polls = total, every, 0
        self.target: TargetChosen | None = TargetChosen(8, b"\x01" * 32, b"\x02" * 32)
        self.chunks = 0

    @property
    def progress(self) -> StateProgress:
        return StateProgress(self.chunks, self.total, 10 * self.chunks)

    @property
    def done(self) -> bool:
        return self.chunks == self.total


class _Driver:
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.attached: list[object] = []
        self.refused: Counter[tuple[StreamType, int]] = Counter()

    def attach(self, peer: object) -> None:
        self.attached.append(peer)

    async def wait(self, pred: Any, timeout: float) -> bool:
        await asyncio.sleep(timeout)
        c = self.client
        c.polls += 1
        if c.every and c.polls % c.every == 0:
            c.chunks += 1
        return bool(pred())


def _chain_sync() -> sync_mod.ChainSync:
    async def dial_once(j: int) -> None:
        return None

    conns = SimpleNamespace(dial_once=dial_once, live=lambda: ["peer"], connected=lambda: [1])
    node = SimpleNamespace(g=SimpleNamespace(vset=SimpleNamespace(n=4)), me=3, conns=conns)
    return sync_mod.ChainSync(node)  # type: ignore[arg-type]


def _download(chain: sync_mod.ChainSync, client: _Client) -> list[dict[str, Any] | None]:
    """Run ``_download``; the status records seen at each poll."""
    seen: list[dict[str, Any] | None] = []
    driver = _Driver(client)

    async def run() -> None:
        wait = driver.wait

        async def watched(pred: Any, timeout: float) -> bool:
            seen.append(chain.progress())
            return await wait(pred, timeout)

        driver.wait = watched  # type: ignore[method-assign]
        chain.watch = chain.new_watch(asyncio.get_running_loop().time())
        await chain._download(client, driver, {})  # type: ignore[arg-type]

    asyncio.run(run())
    return seen


def test_a_slow_sync_that_keeps_moving_outlives_the_stall_bound(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One chunk every 2 polls (0.02 s each): 0.6 s in all, three times the 0.2 s stall
    bound, and no wait between chunks reaches it: the sync completes (a total-time
    bound would have failed it)."""
    monkeypatch.setattr(sync_mod, "SYNC_POLL_S", 0.02)
    monkeypatch.setattr(sync_mod, "STATE_SYNC_STALL_S", 0.2)
    monkeypatch.setattr(sync_mod, "STATE_SYNC_REPORT_S", 0.1)
    chain, client = _chain_sync(), _Client(total=15, every=2)
    caplog.set_level("INFO", logger="zapstack.node")
    seen = _download(chain, client)
    assert client.done and client.polls == 30
    records = [r for r in seen if r is not None]
    assert len(records) == len(seen) == 30  # the status record throughout
    assert [r["chunks"] for r in records] == sorted(r["chunks"] for r in records)
    assert records[-1]["of"] == 15 and records[-1]["target"] == 8
    lines = [r.getMessage() for r in caplog.records if "chunks (" in r.getMessage()]
    assert lines and all(m.startswith("state sync at height 8: ") for m in lines)
    assert chain.progress() is not None  # state_sync() clears it, not _download


def test_a_sync_with_no_progress_for_the_stall_bound_fails_with_where_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync_mod, "SYNC_POLL_S", 0.02)
    monkeypatch.setattr(sync_mod, "STATE_SYNC_STALL_S", 0.2)
    chain, client = _chain_sync(), _Client(total=64, every=0)
    client.target = None
    t0 = time.monotonic()
    with pytest.raises(ZapError, match=r"no progress for 0 s \(before choosing a target block"):
        _download(chain, client)
    assert time.monotonic() - t0 >= 0.2  # not before the bound
    assert client.polls >= 1 and client.progress == StateProgress(0, 64, 0)


def test_the_status_record_is_none_when_no_state_sync_runs() -> None:
    chain = _chain_sync()
    assert chain.progress() is None
    chain.watch = SyncWatch(5.0, stall_s=60, every_s=10)
    chain.watch.observe(None, NO_PROGRESS, 6.0)
    assert chain.progress() == chain.watch.record(6.0)


def test_the_failure_names_what_the_peers_refused() -> None:
    assert sync_mod.refusals(Counter()) == ""
    refused = Counter({
        (StreamType.HEADER_RANGE, int(WireCode.RATE_LIMITED)): 2,
        (StreamType.STATE_CHUNK, int(WireCode.NOT_FOUND)): 12,
        (StreamType.STATE_CHUNK, 0xEE): 2,  # not a code of ours
    })  # fmt: skip
    assert sync_mod.refusals(refused) == (
        "; refused: STATE_CHUNK NOT_FOUND x12, HEADER_RANGE RATE_LIMITED x2, "
        "STATE_CHUNK 0xee x2 (NOT_FOUND: the peers no longer serve the target's state root)"
    )
    assert "NOT_FOUND:" not in sync_mod.refusals(Counter({(StreamType.STATE_CHUNK, 0x37): 1}))


def test_a_stalled_sync_says_what_the_peers_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_mod, "SYNC_POLL_S", 0.02)
    monkeypatch.setattr(sync_mod, "STATE_SYNC_STALL_S", 0.1)
    chain, client = _chain_sync(), _Client(total=64, every=0)
    refused = Counter({(StreamType.STATE_CHUNK, int(WireCode.NOT_FOUND)): 3})
    real = _Driver.__init__

    def init(self: _Driver, c: _Client) -> None:
        real(self, c)
        self.refused = refused

    monkeypatch.setattr(_Driver, "__init__", init)
    with pytest.raises(ZapError) as err:
        _download(chain, client)
    assert str(err.value).startswith("state sync made no progress for 0 s (at height 8, 0/64")
    assert str(err.value).endswith("; validators connected: [1]" + sync_mod.refusals(refused))


# ---------------------------------------------------------------- starting over


def _refused(
    monkeypatch: pytest.MonkeyPatch, *, stall: float, retarget: float, once: bool
) -> tuple[sync_mod.ChainSync, _Client, _Driver]:
    """A sync whose client never verifies a chunk, with a driver that counts one more
    STATE_CHUNK NOT_FOUND at each poll (``once``: only one in all), polled every 20 ms."""
    monkeypatch.setattr(sync_mod, "SYNC_POLL_S", 0.02)
    monkeypatch.setattr(sync_mod, "STATE_SYNC_STALL_S", stall)
    monkeypatch.setattr(sync_mod, "STATE_SYNC_RETARGET_S", retarget)
    client = _Client(total=64, every=0)
    driver = _Driver(client)
    wait = driver.wait

    async def refusing(pred: Any, timeout: float) -> bool:
        key = (StreamType.STATE_CHUNK, int(WireCode.NOT_FOUND))
        driver.refused[key] = 1 if once else driver.refused[key] + 1
        return await wait(pred, timeout)

    driver.wait = refusing  # type: ignore[method-assign]
    return _chain_sync(), client, driver


def test_a_target_the_peers_stopped_serving_is_given_up_for_a_newer_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No chunk comes and every poll brings another NOT_FOUND: after the retarget bound
    the download returns True (start over), logged at WARNING, well before the stall
    bound."""
    chain, client, driver = _refused(monkeypatch, stall=5.0, retarget=0.1, once=False)
    caplog.set_level("WARNING", logger="zapstack.node")

    async def run() -> tuple[bool, float]:
        t0 = asyncio.get_running_loop().time()
        chain.watch = chain.new_watch(t0)
        again = await chain._download(client, driver, {})  # type: ignore[arg-type]
        return again, asyncio.get_running_loop().time() - t0

    again, took = asyncio.run(run())
    assert again and 0.1 <= took < 5.0
    assert chain.watch is not None and chain.watch.retargets == 1
    assert chain.watch.record(chain.watch.now)["target"] is None
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("state sync: the peers no longer serve the state root of height 8")
    assert line.endswith("starting over at a newer block (1 of 3)")


def test_a_new_drivers_refusals_count_on_from_the_earlier_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a start over the watch has seen 7 NOT_FOUND; the new driver's count starts at
    0.  ``refused_before`` carries the 7: the watch sees one count that only grows (8 at
    the new driver's first NOT_FOUND, which makes the new target due)."""
    chain, client, driver = _refused(monkeypatch, stall=2.0, retarget=0.05, once=True)

    async def run(before: int) -> bool:
        now = asyncio.get_running_loop().time()
        chain.watch = chain.new_watch(now)
        chain.watch.observe(5, NO_PROGRESS, now, not_found=7)  # the earlier target's 7
        return await chain._download(client, driver, {}, before)  # type: ignore[arg-type]

    assert asyncio.run(run(7)) is True
    assert chain.watch is not None and chain.watch.record(chain.watch.now)["not_found"] == 8


class _Closing(_Driver):
    """A driver of the loop test: records that it was closed."""

    made: ClassVar[list[_Closing]] = []

    def __init__(self, client: _Client, on_event: Any = None) -> None:
        super().__init__(client)
        self.closed = False
        _Closing.made.append(self)

    async def wait(self, pred: Any, timeout: float) -> bool:
        if self.client.every == 0:  # the first target: its root is refused, never served
            self.refused[StreamType.STATE_CHUNK, int(WireCode.NOT_FOUND)] += 1
        return await super().wait(pred, timeout)

    async def close(self) -> None:
        self.closed = True


def test_state_sync_starts_over_with_a_new_client_and_adopts_the_second_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync_mod, "SYNC_POLL_S", 0.02)
    monkeypatch.setattr(sync_mod, "STATE_SYNC_RETARGET_S", 0.1)
    monkeypatch.setattr(sync_mod, "ClientDriver", _Closing)
    monkeypatch.setattr(sync_mod, "cert_check", lambda g: lambda view, cert: True)
    _Closing.made = []
    chain = _chain_sync()
    clients = [_Client(total=64, every=0), _Client(total=3, every=1)]
    clients[1].target = TargetChosen(12, b"\x03" * 32, b"\x04" * 32)
    made: list[_Client] = []

    def new_client(check: Any) -> tuple[_Client, Any]:
        made.append(clients[len(made)])
        return made[-1], SimpleNamespace(queue=[])

    adopted: list[_Client] = []

    async def adopt(client: _Client, driver: Any, kept: Any, started: float) -> None:
        adopted.append(client)

    monkeypatch.setattr(chain, "_client", new_client)
    monkeypatch.setattr(chain, "_adopt", adopt)
    asyncio.run(chain.state_sync())
    assert made == clients and adopted == [clients[1]] and clients[1].done
    assert [d.closed for d in _Closing.made] == [True, True]  # each driver closed
    assert chain.watch is None  # cleared when the sync ends
