"""The live explorer page every node serves: its head, recent blocks, each block's legs.

Contract
--------
* ``GET /`` redirects to ``/explorer``; ``GET /explorer`` is one static HTML
  page (``explorer.html`` next to this module: plain HTML, CSS and JS, no
  build step, nothing fetched from another host) that polls
  ``/explorer/data.json`` once a second and draws it.
* ``GET /explorer/data.json`` is :func:`explorer_data`: the node (index of n,
  chain id, policy), its head (height, round, block id, state root), mempool
  size, connected peers, health, and the last :data:`RECENT` finalized
  heights, newest first.  Each block carries its **leg timeline**
  (:func:`timeline`): the four QuasarCert legs in the order they aggregated,
  each with its time in ms after the round started and the tier the cert had
  once that leg was in (the tier *rising*: BLS -> PQ-off, + Pulsar -> PQ-fast,
  + Corona -> PQ-strict, + Magnetar -> PQ-heavy on a hybrid chain).  Leg
  times are known to the validator that aggregated the height (its
  proposer); on the others a block shows its tier and ``timed_by``.
* Reads only; every value is computed from the node at request time.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from aiohttp import web

from zapstack.consensus.digest import LegId
from zapstack.consensus.policy import CertPolicy
from zapstack.node.engine.state import tier_name
from zapstack.node.health import assess

if TYPE_CHECKING:
    from zapstack.node.engine import HeightRecord
    from zapstack.node.node import Node

__all__ = ["LEG_NAMES", "RECENT", "explorer_data", "page", "routes", "timeline"]

RECENT = 20
"""Finalized heights listed."""

LEG_NAMES: dict[str, str] = {
    "bls": "BLS",
    "pulsar": "Pulsar · ML-DSA-65",
    "corona": "Corona · Ringtail",
    "magnetar": "Magnetar · SLH-DSA",
}
"""Leg label -> what the page calls it, in LegId order."""


def timeline(record: HeightRecord, policy: CertPolicy) -> list[dict[str, Any]]:
    """The legs of ``record`` in arrival order, each with the tier after it.

    A leg that failed (``-1``) follows the ones that landed, with ``ms`` None
    and the tier unchanged; a leg with no time here is left out.
    """
    landed = sorted(
        ((ms, LegId.from_label(leg)) for leg, ms in record.legs_ms.items() if ms >= 0),
        key=lambda pair: (pair[0], pair[1]),
    )
    present: set[LegId] = set()
    out: list[dict[str, Any]] = []
    for ms, leg in landed:
        present.add(leg)
        tier = tier_name(policy, present)
        out.append({"leg": leg.label, "name": LEG_NAMES[leg.label], "ms": ms, "tier": tier})
    tier = tier_name(policy, present)
    for label, ms in sorted(record.legs_ms.items()):
        if ms < 0:
            out.append({"leg": label, "name": LEG_NAMES[label], "ms": None, "tier": tier})
    return out


def _block(record: HeightRecord, policy: CertPolicy) -> dict[str, Any]:
    return {
        "height": record.height,
        "id": record.block_id,
        "round": record.round,
        "txs": record.txs,
        "proposer": record.proposer,
        "tier": record.tier,
        "finalize_ms": record.finalized_ms or None,
        "legs": timeline(record, policy),
        "timed_by": None if record.legs_ms else record.proposer,
    }


def explorer_data(node: Node) -> dict[str, Any]:
    """The JSON the page draws (see the module contract)."""
    g = node.g
    consensus = node.consensus
    policy = g.policy
    health = assess(node)
    return {
        "node": {"index": node.me, "n": g.vset.n, "chain_id": g.chain_id},
        "policy": {
            "mode": policy.mode.value,
            "variant": policy.variant.value,
            "timeout_ms": policy.timeout_ms,
            "fallback": None if policy.fallback is None else policy.fallback.value,
        },
        "head": {
            "height": consensus.height - 1,
            "round": consensus.round,
            "id": node.executor.head.hex(),
        },
        "mempool": len(node.mempool),
        "peers": list(health.connected),
        "health": health.body(),
        "blocks": [_block(r, policy) for r in reversed(consensus.history[-RECENT:])],
    }


@cache
def page() -> bytes:
    """The page's HTML (read once from the package)."""
    return files("zapstack.node.http").joinpath("explorer.html").read_bytes()


def routes(node: Node) -> Sequence[web.AbstractRouteDef]:
    async def root(_: web.Request) -> web.Response:
        raise web.HTTPFound("/explorer")

    async def explorer(_: web.Request) -> web.Response:
        return web.Response(body=page(), content_type="text/html", charset="utf-8")

    async def data(_: web.Request) -> web.Response:
        return web.json_response(explorer_data(node), headers={"Cache-Control": "no-store"})

    return [
        web.get("/", root),
        web.get("/explorer", explorer),
        web.get("/explorer/data.json", data),
    ]
