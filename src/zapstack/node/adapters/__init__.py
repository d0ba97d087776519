"""The node's asyncio adapters that run sans-IO cores over real QUIC (IO at the edges).

* :mod:`~zapstack.node.adapters.dht_quic` -- :class:`QuicDht`: a
  :class:`~zapstack.dht.node.DhtNode` and its chunk pulls on a QUIC endpoint;
  its per-stream handlers are :mod:`~zapstack.node.adapters.dht_streams`.
* :mod:`~zapstack.node.adapters.mempool_quic` -- :class:`TxAdmitServer`: the tx
  receive pipeline behind every ``TX_SUBMIT`` stream, signature checks batched
  on a thread pool, admit receipts pushed back.
* :mod:`~zapstack.node.adapters.mempool_receipts` -- :class:`ReceiptTracker` and
  the sans-IO :class:`FrameSplitter`: the submitter's side of admit receipts.

The cores (:mod:`zapstack.dht`, :mod:`zapstack.mempool`) never import asyncio;
these adapters do.  Concurrency: each adapter runs on one event loop and calls
its cores only from it.  Unwind: every ``close()`` is idempotent and bounded.
"""

from zapstack.node.adapters.dht_quic import QuicDht
from zapstack.node.adapters.mempool_quic import TxAdmitConfig, TxAdmitServer
from zapstack.node.adapters.mempool_receipts import FrameSplitter, ReceiptTracker

__all__ = ["FrameSplitter", "QuicDht", "ReceiptTracker", "TxAdmitConfig", "TxAdmitServer"]
