"""The block subscription (server-sent events) of a running node, and the docs' indexer.

A subscriber with ``from=1`` gets blocks 1, 2, 3 ... in order, no gap, no repeat; a live
subscriber's first block is one finalized after it subscribed; ``Last-Event-ID`` resumes
after that height.  Each event's block id is sha256 of the block file the node wrote."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from zapstack.node.blockstore import BlockStore

INDEXER = Path(__file__).resolve().parents[3] / "docs" / "examples" / "indexer.py"


async def _events(url: str, query: str, n: int, headers: dict[str, str] | None = None) -> list:  # type: ignore[type-arg]
    out: list[tuple[int, dict[str, Any]]] = []
    async with (
        aiohttp.ClientSession(url) as s,
        s.get("/v1/events/blocks" + query, headers=headers or {}) as r,
    ):
        assert r.status == 200 and r.content_type == "text/event-stream"
        event_id = None
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                out.append((event_id, json.loads(line[6:])))
                if len(out) == n:
                    return out
    return out


def test_replay_then_live_in_order_with_ids(api_chain: Any) -> None:
    api_chain.wait_height(3)
    events = asyncio.run(asyncio.wait_for(_events(api_chain.url, "?from=1", 5), 60))
    assert [e[0] for e in events] == [1, 2, 3, 4, 5]
    store = BlockStore(api_chain.home / "blocks")
    for height, doc in events:
        block = store.block(height)
        assert block is not None and doc["block_id"] == hashlib.sha256(block).hexdigest()
        assert doc["height"] == height and doc["tier"]["accepted"] is not None


def test_live_subscriber_and_resume_with_last_event_id(api_chain: Any) -> None:
    head = api_chain.wait_height(1)
    live = asyncio.run(asyncio.wait_for(_events(api_chain.url, "", 2), 60))
    assert live[0][0] > head and live[1][0] == live[0][0] + 1
    resumed = asyncio.run(
        asyncio.wait_for(_events(api_chain.url, "", 2, {"Last-Event-ID": "2"}), 60)
    )
    assert [e[0] for e in resumed] == [3, 4]


def test_a_bad_start_is_a_400(api_chain: Any) -> None:
    async def main() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(api_chain.url) as s,
            s.get("/v1/events/blocks?from=abc") as r,
        ):
            return r.status, await r.json()

    status, body = asyncio.run(main())
    assert status == 400 and body["error"]["code"] == "bad_height"


def test_the_docs_indexer_follows_blocks_over_the_subscription(api_chain: Any) -> None:
    api_chain.wait_height(3)
    run = subprocess.run(
        [sys.executable, str(INDEXER), "--node", api_chain.url, "--from", "1", "--blocks", "3"],
        capture_output=True, text=True, timeout=60, check=True, cwd="/",
    )  # fmt: skip
    lines = run.stdout.splitlines()
    store = BlockStore(api_chain.home / "blocks")
    assert len(lines) == 3
    for height, line in enumerate(lines, 1):
        block = store.block(height)
        assert block is not None
        assert line.startswith(f"height {height} id {hashlib.sha256(block).hexdigest()[:16]} ")
