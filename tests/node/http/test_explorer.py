"""The explorer: leg timelines against the policy table, its routes, and the page in a browser.

The browser test runs a real one-validator ``zap node --http-port`` and
renders ``/explorer`` in headless Chromium (``--dump-dom`` and
``--screenshot``): some block row must hold the four legs.  Without Chromium
it skips with the reason, unless ``ZAP_REQUIRE_CHROMIUM=1`` (``make
explorer-shot``), where it fails; ``ZAP_EXPLORER_SHOT`` names where the
screenshot goes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from zapstack.consensus.policy import CertPolicy, Mode, Variant
from zapstack.devnet.processes import free_port_base
from zapstack.node.engine import HeightRecord
from zapstack.node.genesis import make_devnet
from zapstack.node.http.explorer import LEG_NAMES, RECENT, explorer_data, page, routes, timeline
from zapstack.node.http.server import NodeHttp

HYBRID = CertPolicy(Mode.PQ_FAST, Variant.HYBRID, 3000, Mode.PQ_OFF)
PURE = CertPolicy(Mode.STRICT_PQ_FAST, Variant.PURE_PQ, 3000, None)


def record(height: int, legs: dict[str, int], proposer: int = 0) -> HeightRecord:
    return HeightRecord(height, 0, f"{height:02x}" * 32, 3, proposer, "PQ-fast", legs_ms=legs)


# (legs_ms, policy, expected [(leg, ms, tier after it)]): tiers from LP-0202's mode table
# (hybrid: BLS -> PQ-off, +Pulsar -> PQ-fast, +Corona -> PQ-strict, +Magnetar -> PQ-heavy)
CASES = [
    (
        {"bls": 12, "pulsar": 15, "corona": 40, "magnetar": 30},
        HYBRID,
        [
            ("bls", 12, "PQ-off"),
            ("pulsar", 15, "PQ-fast"),
            ("magnetar", 30, "PQ-fast"),
            ("corona", 40, "PQ-heavy"),
        ],
    ),
    (
        {"pulsar": 5, "bls": 9, "corona": 20, "magnetar": 21},
        HYBRID,
        [
            ("pulsar", 5, "none"),
            ("bls", 9, "PQ-fast"),
            ("corona", 20, "PQ-strict"),
            ("magnetar", 21, "PQ-heavy"),
        ],
    ),
    (
        {"bls": 3, "pulsar": 4, "corona": 9, "magnetar": 12},
        PURE,
        [
            ("bls", 3, "none"),
            ("pulsar", 4, "strict-PQ-fast"),
            ("corona", 9, "strict-PQ-strict"),
            ("magnetar", 12, "strict-PQ-heavy"),
        ],
    ),
    (
        {"bls": 7, "pulsar": 8, "corona": -1},
        HYBRID,
        [("bls", 7, "PQ-off"), ("pulsar", 8, "PQ-fast"), ("corona", None, "PQ-fast")],
    ),
]


@pytest.mark.parametrize(("legs", "policy", "expected"), CASES)
def test_timeline_orders_legs_and_raises_the_tier(
    legs: dict[str, int], policy: CertPolicy, expected: list[tuple[str, int | None, str]]
) -> None:
    got = timeline(record(5, legs), policy)
    assert [(x["leg"], x["ms"], x["tier"]) for x in got] == expected
    assert all(x["name"] == LEG_NAMES[x["leg"]] for x in got)


def fake_node(history: list[HeightRecord]) -> Any:
    """The parts explorer_data and the health rule read (4 validators, 2 connected)."""
    vset = SimpleNamespace(n=4, threshold_weight=3, weight_of=lambda ix: len(set(ix)))
    return SimpleNamespace(
        me=1,
        g=SimpleNamespace(vset=vset, chain_id=0x4C5558, policy=HYBRID),
        consensus=SimpleNamespace(height=len(history) + 1, round=0, halted=False, history=history),
        executor=SimpleNamespace(head=b"\xab" * 32),
        mempool=[b"tx"] * 5,
        conns=SimpleNamespace(connected=lambda: [0, 3]),
        sync=SimpleNamespace(catching_up=False, heights=SimpleNamespace(peers_height=lambda: None)),
        needs_sync=False,
        fatal=None,
    )


def test_data_lists_recent_blocks_newest_first() -> None:
    history = [record(h, {"bls": h} if h % 2 else {}, proposer=h % 4) for h in range(1, 31)]
    data = explorer_data(fake_node(history))
    assert [b["height"] for b in data["blocks"]] == list(range(30, 30 - RECENT, -1))
    assert data["head"] == {"height": 30, "round": 0, "id": "ab" * 32}
    assert data["mempool"] == 5 and data["peers"] == [0, 3]
    assert data["node"] == {"index": 1, "n": 4, "chain_id": 0x4C5558}
    assert data["health"]["ok"] is True
    timed, untimed = data["blocks"][1], data["blocks"][0]  # 29 has legs, 30 not
    assert timed["timed_by"] is None and [x["leg"] for x in timed["legs"]] == ["bls"]
    assert untimed["legs"] == [] and untimed["timed_by"] == 30 % 4
    json.dumps(data)


async def _fetch(node: Any) -> dict[str, Any]:
    server = NodeHttp(node, "127.0.0.1", 0, tables=[routes])
    await server.start()
    out: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession(server.url) as s:
            async with s.get("/", allow_redirects=False) as r:
                out["root"] = (r.status, r.headers.get("Location"))
            async with s.get("/explorer") as r:
                out["page"] = (r.status, r.content_type, await r.text())
            async with s.get("/explorer/data.json") as r:
                out["data"] = (r.status, await r.json())
    finally:
        await server.close()
    return out


def test_routes_serve_the_page_and_its_data() -> None:
    out = asyncio.run(_fetch(fake_node([record(1, {"bls": 4})])))
    assert out["root"] == (302, "/explorer")
    status, ctype, html = out["page"]
    assert status == 200 and ctype == "text/html"
    assert "/explorer/data.json" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from another host
    assert out["data"][0] == 200 and out["data"][1]["blocks"][0]["height"] == 1
    assert page() == html.encode()


# ------------------------------------------------------------ in a browser
def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class LegRows(HTMLParser):
    """Block rows of the rendered DOM: height -> the legs drawn in it."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[int, dict[str, int]] = {}
        self.current: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "block" in (a.get("class") or "").split():
            self.current = int(a["data-height"] or 0)
            self.rows[self.current] = {}
        elif tag == "span" and self.current is not None and a.get("data-leg"):
            self.rows[self.current][a["data-leg"] or ""] = int(a["data-ms"] or -1)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def wait_for_four_legs(url: str, proc: subprocess.Popen[bytes]) -> int:
    """A height whose four legs have all landed, per the node's data endpoint."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, "zap node exited"
        try:
            for b in get_json(url + "/explorer/data.json")["blocks"]:
                if len([x for x in b["legs"] if x["ms"] is not None]) == 4:
                    return int(b["height"])
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError("no block with four legs in 90 s")


def browse(exe: str, url: str, profile: Path, *extra: str) -> str:
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"]
    args += ["--no-first-run", "--disable-background-networking", "--disable-component-update"]
    args += ["--disable-sync", f"--user-data-dir={profile}", "--window-size=1280,900"]
    args += ["--virtual-time-budget=4000", *extra, url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_browser_renders_a_block_with_four_legs(tmp_path: Path) -> None:
    exe = chromium()
    if exe is None:
        if os.environ.get("ZAP_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is not installed (make explorer-shot installs it)")
        pytest.skip("no chromium on PATH: `make explorer-shot` installs Debian's and runs this")
    base = free_port_base(2)
    home = make_devnet(tmp_path / "net", 1, base_port=base, users=2)[0]
    cmd = [sys.executable, "-m", "zapstack.cli", "node", "--home", str(home)]
    proc = subprocess.Popen([*cmd, "--http-port", str(base + 1)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{base + 1}"
    shot = Path(os.environ.get("ZAP_EXPLORER_SHOT") or tmp_path / "explorer.png")
    try:
        height = wait_for_four_legs(url, proc)
        dom = browse(exe, url + "/explorer", tmp_path / "profile", "--dump-dom")
        shot.parent.mkdir(parents=True, exist_ok=True)
        browse(exe, url + "/explorer", tmp_path / "profile", f"--screenshot={shot}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    parser = LegRows()
    parser.feed(dom)
    assert height in parser.rows, sorted(parser.rows)
    four = {h: legs for h, legs in parser.rows.items() if set(legs) == set(LEG_NAMES)}
    assert four, parser.rows
    assert all(ms >= 0 for legs in four.values() for ms in legs.values())
    assert "its four cert legs arriving" in dom and "tier: none" in dom
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"explorer screenshot: {shot}")
