"""``zap node``'s repair of damaged block files: re-fetched from the validators.

Contract
--------
:func:`repair_blocks` runs when a node's start finds block or cert files up to
its ZapDB head missing or damaged (:class:`~zapstack.node.blockstore.DamagedBlocks`),
under the home's lock, before the node opens its endpoint.  Through the light
client (``api.md`` §2) it takes the certs of those heights over HEADER_RANGE
(each verified against the genesis set and policy) and the blocks they name
through the DHT (``sha256`` = the cert's block id, ``verify_cert`` with the
block, the height), checks that the head's block is the one ZapDB names, and
rewrites the files (:meth:`BlockStore.put`).  Bounded by :data:`REPAIR_TIMEOUT_S`;
any failure -- no peers, a cert or block nobody serves, a head that differs --
raises one line that starts with the damage found.  The node layer cannot
import the light client (it sits above it), so ``zap node`` passes this in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from zapstack.consensus import cert as cert_mod
from zapstack.errors import FatalStoreError, ZapError
from zapstack.lightclient import LightClient
from zapstack.node.blockstore import BlockStore, DamagedBlocks
from zapstack.node.genesis import Genesis
from zapstack.zap.frames import parse_block

__all__ = ["REPAIR_TIMEOUT_S", "repair_blocks"]

log = logging.getLogger("zapstack.node")

REPAIR_TIMEOUT_S = 60.0
"""Bound on one repair (seconds)."""


async def _fetch(
    lc: LightClient, g: Genesis, damaged: DamagedBlocks
) -> list[tuple[int, bytes, bytes]]:
    heights = sorted(damaged.heights)
    await lc.start()
    certs = await lc.certs(heights[0], heights[-1])
    out = []
    for h in heights:
        if h not in certs:
            raise FatalStoreError(f"no validator served the cert of height {h}")
        cert_bytes = certs[h][0]
        cert, _ = lc.check_cert(h, cert_bytes)
        if h == damaged.head_height and cert.block_id != damaged.head_id:
            raise FatalStoreError(f"the chain's block {h} is not the head ZapDB names (a fork?)")
        block, _, _ = await lc.fetch_block(cert.block_id)
        if parse_block(block, chain_id=g.chain_id).height != h:
            raise FatalStoreError(f"the block fetched for height {h} names another height")
        cert_mod.verify_cert(cert, g.vset, block_bytes=block)
        out.append((h, block, cert_bytes))
    return out


async def repair_blocks(g: Genesis, home: Path, damaged: DamagedBlocks) -> None:
    """Re-fetch and rewrite the damaged heights of ``home/blocks`` (see the contract)."""
    if g.vset.n < 2:
        raise FatalStoreError(f"{damaged} (no other validator to re-fetch them from)")
    lc = LightClient(g)
    try:
        fetched = await asyncio.wait_for(_fetch(lc, g, damaged), REPAIR_TIMEOUT_S)
    except (ZapError, TimeoutError, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise FatalStoreError(f"{damaged} (re-fetch from peers failed: {reason})") from exc
    finally:
        with contextlib.suppress(ZapError, TimeoutError, OSError):
            await lc.close()
    store = BlockStore(home / "blocks")
    for h, block, cert in fetched:
        store.put(h, block, cert)
    log.warning("re-fetched the block files of heights %s from peers", [h for h, _, _ in fetched])
