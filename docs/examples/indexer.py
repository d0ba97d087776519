"""A block indexer that follows a node over its block subscription: no disk access.

    python docs/examples/indexer.py --node http://127.0.0.1:8545 [--from 1] [--blocks N]

It reads ``GET /v1/events/blocks`` (server-sent events, docs/api.md §4), keeps
per-account totals in memory, and prints one line per finalized block.  On a
dropped connection (or an ``overflow`` event: it fell behind) it reconnects
with ``Last-Event-ID`` and resumes after the last height it saw, so it
misses no block and counts none twice.  Only aiohttp is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp


async def events(node: str, start: int | None) -> AsyncIterator[dict[str, Any]]:
    """Yield each block event's JSON, reconnecting after the last id seen."""
    last = None if start is None else start - 1
    async with aiohttp.ClientSession(node, timeout=aiohttp.ClientTimeout(sock_read=60)) as s:
        while True:
            headers = {} if last is None else {"Last-Event-ID": str(last)}
            try:
                async with s.get("/v1/events/blocks", headers=headers) as r:
                    r.raise_for_status()
                    kind = ""
                    async for raw in r.content:
                        line = raw.decode().rstrip("\n")
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: ") and kind == "block":
                            block = json.loads(line[6:])
                            last = block["height"]
                            yield block
            except (aiohttp.ClientError, TimeoutError) as exc:
                print(f"reconnecting after height {last}: {exc!r}")
                await asyncio.sleep(1.0)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--node", default="http://127.0.0.1:8545")
    ap.add_argument("--from", dest="start", type=int, default=None, help="replay from height")
    ap.add_argument("--blocks", type=int, default=0, help="stop after N blocks (0: never)")
    args = ap.parse_args()
    received: Counter[str] = Counter()
    seen = 0
    async for block in events(args.node, args.start):
        for tx in block["txs"]:
            received[tx["recipient"]] += tx["amount"]
        tier = (block.get("tier") or {}).get("accepted")
        print(
            f"height {block['height']} id {block['block_id'][:16]} txs {block['tx_count']} "
            f"tier {tier} accounts credited so far {len(received)}",
            flush=True,
        )
        seen += 1
        if args.blocks and seen >= args.blocks:
            return


if __name__ == "__main__":
    asyncio.run(main())
