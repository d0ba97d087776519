"""Kademlia DHT and light-client chunk re-fetch (LP-0202 §Light-client chunk re-fetch).

Layers, all sans-IO (bytes, events and ``now`` in; bytes and actions out):

* :mod:`~zapstack.dht.ids` -- 256-bit node ids (sha256 of the public key), XOR metric.
* :mod:`~zapstack.dht.messages` -- every DHT / chunk message as a frozen value.
* :mod:`~zapstack.dht.wire` -- their byte-exact codec, with an incremental
  reader (``docs/formats/dht.md``, ``docs/formats/chunks.md``).
* :mod:`~zapstack.dht.routing` -- k = 20 buckets, replacement cache, refresh on ``now``.
* :mod:`~zapstack.dht.lookup` -- α = 3 iterative lookup state machine.
* :mod:`~zapstack.dht.records` -- bounded content-addressed values, provider
  records, per-peer token buckets.
* :mod:`~zapstack.dht.node` -- client operations; :mod:`~zapstack.dht.server` --
  the request handlers it delegates to.
* :mod:`~zapstack.dht.blocks` / :mod:`~zapstack.dht.chunks` -- block layout,
  serving side, and the parallel verified chunk pull (its policy-free core
  :mod:`~zapstack.dht.pullcore`, the buffer :mod:`~zapstack.dht.reassembly`,
  the actions :mod:`~zapstack.dht.chunk_actions`).
* :mod:`~zapstack.dht.memnet` -- an in-memory network (test/bench harness).
* the ``dht_refetch`` conformance suite is :mod:`zapstack.conformance.dht_refetch`.

Concurrency: every object here is single-threaded; the transport adapter
serialises calls into one node / pull.  Unwind calls (``peer_disconnected``,
``stream_reset``, ``rpc_failed``, ``drop_block``, ``remove``) are idempotent.
"""

from zapstack.dht.blocks import BlockLayout, ServedBlock, synthetic_block, synthetic_layout
from zapstack.dht.chunk_actions import (
    CancelRequest,
    PullComplete,
    RequestChunk,
    RequestHeader,
    Stalled,
)
from zapstack.dht.chunks import ChunkPull
from zapstack.dht.ids import Contact, distance, node_id
from zapstack.dht.lookup import Lookup, LookupMode, LookupResult
from zapstack.dht.node import CancelRpc, DhtNode, OpDone, OpKind, SendRpc
from zapstack.dht.records import RateLimiter, RecordStore
from zapstack.dht.routing import K, RoutingTable
from zapstack.dht.wire import MessageReader, decode, encode

__all__ = [
    "BlockLayout",
    "CancelRequest",
    "CancelRpc",
    "ChunkPull",
    "Contact",
    "DhtNode",
    "K",
    "Lookup",
    "LookupMode",
    "LookupResult",
    "MessageReader",
    "OpDone",
    "OpKind",
    "PullComplete",
    "RateLimiter",
    "RecordStore",
    "RequestChunk",
    "RequestHeader",
    "RoutingTable",
    "SendRpc",
    "ServedBlock",
    "Stalled",
    "decode",
    "distance",
    "encode",
    "node_id",
    "synthetic_block",
    "synthetic_layout",
]
