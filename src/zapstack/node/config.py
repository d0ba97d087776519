"""A node's home folder and its tunables.

Contract
--------
A node home holds ``node.json`` (its keys, :func:`~zapstack.node.genesis.load_node_keys`),
``db/`` (ZapDB), ``blocks/`` (finalized blocks + certs,
:class:`~zapstack.node.blockstore.BlockStore`), ``status.json`` (rewritten when it
changes, at least once a second, :mod:`zapstack.node.status`) and ``node.log`` (JSON lines,
:func:`~zapstack.node.run.configure_logging`).  The genesis file is
``<home>/genesis.json`` or ``<home>/../genesis.json`` (:func:`find_genesis`).

The constants below bound what a node buffers and how long it waits; they
are read-only module values (no process-wide mutable state).
"""

from __future__ import annotations

from pathlib import Path

from zapstack.errors import ZapError

__all__ = [
    "CATCH_UP_TIMEOUT",
    "DB_MAX_GIB",
    "DIAL_RETRY_S",
    "GOSSIP_PERIOD_S",
    "MAX_GOSSIP",
    "STATE_SYNC_REPORT_S",
    "STATE_SYNC_RETARGETS",
    "STATE_SYNC_RETARGET_S",
    "STATE_SYNC_STALL_S",
    "STATUS_PERIOD_S",
    "TICK_PERIOD_S",
    "find_genesis",
]

MAX_GOSSIP = 4 * 1024 * 1024
"""Largest MEMPOOL_GOSSIP stream a node buffers."""
CATCH_UP_TIMEOUT = 60.0
"""Bound on one catch-up (seconds)."""
DB_MAX_GIB = 1024
"""Default bound on a node's state store (``db/data.mdb``), in GiB: LMDB maps it whole, as
address space only (the file grows with the data, sparse), so a generous bound costs
nothing on a 64-bit system; a store that reaches it halts the node (``--db-max-gib``)."""
STATE_SYNC_STALL_S = 60.0
"""A state sync of an empty data dir fails once it made no progress (no target block, no
chunk depth, no verified chunk) for this long (seconds); it has no bound on its total
time, which grows with the state (:mod:`zapstack.node.syncwatch`)."""
STATE_SYNC_REPORT_S = 10.0
"""How often a state sync logs its progress while chunks come (seconds)."""
STATE_SYNC_RETARGET_S = 10.0
"""A state sync whose peers answer its target's chunks NOT_FOUND (they stopped serving that
root) and that made no progress for this long (seconds) starts over at a newer block."""
STATE_SYNC_RETARGETS = 3
"""Most times one state sync starts over at a newer block; past them the stall bound
(``STATE_SYNC_STALL_S``) ends it, saying what the peers refused."""
TICK_PERIOD_S = 0.02
"""How often the tx service and the consensus timer are ticked."""
GOSSIP_PERIOD_S = 0.1
"""How often admitted txs are gossiped to peers and subscribers (one batch)."""
STATUS_PERIOD_S = 0.25
"""How often the node is checked for a change to write into ``status.json``."""
DIAL_RETRY_S = 0.3
"""Pause between dials of a validator that is not (or no longer) connected."""


def find_genesis(home: Path) -> Path:
    """``home/genesis.json`` or ``home/../genesis.json``."""
    for candidate in (home / "genesis.json", home.parent / "genesis.json"):
        if candidate.exists():
            return candidate
    raise ZapError(f"no genesis.json in {home} or its parent")
