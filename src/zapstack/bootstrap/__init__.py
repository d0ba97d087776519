"""The bootstrap pipeline (LP-0202 §5): five independent streams per peer.

* :mod:`~zapstack.bootstrap.wire` -- byte-exact requests and records, and
  :mod:`~zapstack.bootstrap.readers` -- their incremental readers
  (``docs/formats/bootstrap.md``).
* :mod:`~zapstack.bootstrap.server` -- :class:`BootstrapServer`: state chunks,
  block ranges and live pushes from a ZapDB and a block store.
* :mod:`~zapstack.bootstrap.client` -- :class:`BootstrapClient`: target choice,
  verified state sync into a fresh ZapDB, per-stream stall recovery, follow;
  its parts :mod:`~zapstack.bootstrap.config` (knobs),
  :mod:`~zapstack.bootstrap.requests` (peers and request streams),
  :mod:`~zapstack.bootstrap.pushes` (push streams) and
  :mod:`~zapstack.bootstrap.statesync` (the state download).
* :mod:`~zapstack.bootstrap.follow` -- block buffer, cert check, appliers.
* :mod:`~zapstack.bootstrap.links` -- glue onto sans-IO transport sessions.
* :mod:`~zapstack.bootstrap.driver` -- the asyncio driver over real QUIC
  (import explicitly; this package does not import asyncio).

The in-memory harness (one client, N servers over loopback session pairs) is
:class:`zapstack.testing.loopnet.LoopNet`.

Concurrency: every core is single-threaded and sans-IO (``now`` injected).
Unwind: ``BootstrapClient.close``/``peer_lost``, ``BootstrapServer.peer_gone``/
``close`` are idempotent.
"""

from zapstack.bootstrap.client import BootstrapClient
from zapstack.bootstrap.config import BootstrapConfig
from zapstack.bootstrap.events import (
    BlockApplied,
    CancelRequest,
    HeadSeen,
    OpenRequest,
    PeerBlamed,
    StateProgress,
    StateSynced,
    StopPush,
    StreamStalled,
    TargetChosen,
    TxGossiped,
    VoteReceived,
)
from zapstack.bootstrap.follow import Applier, BlockBuffer, CertCheck, ExecutorApplier
from zapstack.bootstrap.links import ClientLinks, ServerLink
from zapstack.bootstrap.server import BootstrapServer, Push

__all__ = [
    "Applier",
    "BlockApplied",
    "BlockBuffer",
    "BootstrapClient",
    "BootstrapConfig",
    "BootstrapServer",
    "CancelRequest",
    "CertCheck",
    "ClientLinks",
    "ExecutorApplier",
    "HeadSeen",
    "OpenRequest",
    "PeerBlamed",
    "Push",
    "ServerLink",
    "StateProgress",
    "StateSynced",
    "StopPush",
    "StreamStalled",
    "TargetChosen",
    "TxGossiped",
    "VoteReceived",
]
