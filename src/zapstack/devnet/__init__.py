"""The tools that drive real nodes: ``zap devnet``, its live view, load, ``zap soak``.

They start validators as separate ``zap node`` processes on loopback and talk
to them only over QUIC and through the files each node writes to its home
folder; the node never imports this package.

* :mod:`~zapstack.devnet.processes` -- free ports, spawning node processes,
  ``status.json``, :class:`ProcessCluster` (start / kill / restart / stop);
* :mod:`~zapstack.devnet.loadgen` -- :class:`LoadGenerator`, signed txs over
  TX_SUBMIT streams, optionally some malformed on purpose;
* :mod:`~zapstack.devnet.devnet` -- :func:`run_devnet`: N validators to a target
  height, agreement check, light-client re-fetch, summary;
* :mod:`~zapstack.devnet.view` -- the rich live view of a running devnet;
* :mod:`~zapstack.devnet.malicious` -- :class:`MaliciousPeer`, garbage on tx and
  consensus streams;
* :mod:`~zapstack.devnet.soak` -- :func:`run_soak`: load, a killed and restarted
  validator and a malicious peer for a bounded time;
* :mod:`~zapstack.devnet.soakcheck` -- the soak's offline checks of every data
  dir (:func:`read_chain`).

Each tool runs its own event loop (``asyncio.run``) around blocking process
control; node processes are always stopped in a ``finally``.
"""

from zapstack.devnet.devnet import DevnetResult, devnet_policy, run_devnet
from zapstack.devnet.loadgen import LoadGenerator, LoadStats
from zapstack.devnet.malicious import MaliciousPeer, MaliciousStats
from zapstack.devnet.processes import (
    ProcessCluster,
    free_port_base,
    log_alerts,
    read_status,
    spawn_node,
)
from zapstack.devnet.soak import run_soak
from zapstack.devnet.soakcheck import ChainRead, Restart, SoakResult, read_chain

__all__ = [
    "ChainRead",
    "DevnetResult",
    "LoadGenerator",
    "LoadStats",
    "MaliciousPeer",
    "MaliciousStats",
    "ProcessCluster",
    "Restart",
    "SoakResult",
    "devnet_policy",
    "free_port_base",
    "log_alerts",
    "read_chain",
    "read_status",
    "run_devnet",
    "run_soak",
    "spawn_node",
]
