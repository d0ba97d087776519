"""The node's bounds on every stream a peer opens to it (the table of streams.md §Limits).

Contract
--------
:func:`node_limits` builds the :class:`~zapstack.transport.limits.LimitPolicy`
a validator's endpoint enforces (``Connections.attach`` sets it): one row per
stream type the node serves.  Each ``max_bytes`` is the largest *legal*
content of that type, derived from the format constants (a consensus message
can never be bigger than the largest one the formats allow for this
validator set of ``n``):

* PROPOSAL = header 15 + the largest block frame (``MAX_BLOCK_SIZE``);
* BLOCK_PUSH (FINAL) = 15 + u32 + the largest cert + the largest block;
* CERT_SHARES = 15 + the largest of SHARE (u8 leg + a Magnetar signature),
  CORONA_COMMIT / CORONA_PRECOMMIT, CORONA_SIGNERS (n commitments), CORONA_RESPONSE and
  CERT_UPGRADE (the largest cert);
* the largest cert = 105 + BLS (bitmap + 96) + Pulsar (bitmap + n x 3309) +
  Corona (15,648) + Magnetar (bitmap + n x 17,088) (quasarcert.md);
* TX_SUBMIT = ``MAX_TX_SIZE``; MEMPOOL_GOSSIP = ``MAX_GOSSIP``; HELLO = 512;
  HEADER_RANGE / STATE_CHUNK = their fixed request sizes; DHT_RPC /
  BLOCK_CHUNK = one DHT message (6-byte header + the largest payload).

PROPOSAL, CERT_SHARES and BLOCK_PUSH are validators-only: any other peer
opening one is disconnected on its type byte.  A validator's budget covers
one largest message of each validators-only type at once plus its other
traffic; any other peer's covers a full TX_SUBMIT window and one gossip batch.
Pure functions; no IO.
"""

from __future__ import annotations

from zapstack.dht.wire import HEADER_LEN as DHT_HEADER_LEN
from zapstack.dht.wire import MAX_PAYLOAD as DHT_MAX_PAYLOAD
from zapstack.node.config import MAX_GOSSIP
from zapstack.node.genesis import Genesis
from zapstack.transport.limits import LimitPolicy, StreamLimit
from zapstack.transport.streams import StreamType
from zapstack.zap.schema import MAX_BLOCK_SIZE, MAX_TX_SIZE

__all__ = ["VALIDATORS_ONLY", "largest_cert", "largest_message", "node_limits"]

MSG_HEADER = 15
"""Consensus message header (``<BQIH``, consensus-wire.md §2)."""
BLS_SIG, MLDSA_SIG, RINGTAIL_SIG = 96, 3309, 15_648
SLH_SIG_MAX = 17_088
"""The larger SLH-DSA signature of the two parameter sets (SHA2-128f)."""
RINGTAIL_COMMIT, RINGTAIL_RESPONSE = 702_498, 12_578
"""Ringtail round-1 commitment and round-2 response (ringtail.md §6)."""
HELLO_MAX = 512
RANGE_REQUEST, STATE_REQUEST = 14, 42
"""HEADER_RANGE and STATE_CHUNK request sizes (bootstrap.md §2-3)."""
TX_WINDOW = 64
"""Concurrent TX_SUBMIT streams per peer (the transport's stream limit)."""

VALIDATORS_ONLY = frozenset({StreamType.PROPOSAL, StreamType.CERT_SHARES, StreamType.BLOCK_PUSH})
"""Stream types only a genesis validator may open to a node."""


def largest_cert(n: int) -> int:
    """The largest QuasarCert of a set of ``n`` validators (all four legs, all signing)."""
    bitmap = (n + 7) // 8
    return (
        105
        + (bitmap + BLS_SIG)
        + (bitmap + n * MLDSA_SIG)
        + RINGTAIL_SIG
        + (bitmap + n * SLH_SIG_MAX)
    )


def largest_message(stream_type: StreamType, n: int) -> int:
    """The largest legal consensus message on ``stream_type`` for ``n`` validators."""
    cert = largest_cert(n)
    payload = {
        StreamType.PROPOSAL: MAX_BLOCK_SIZE,
        StreamType.BLOCK_PUSH: 4 + cert + MAX_BLOCK_SIZE,
        StreamType.CERT_SHARES: max(
            1 + SLH_SIG_MAX,  # SHARE
            RINGTAIL_COMMIT,  # CORONA_COMMIT, CORONA_PRECOMMIT
            2 + n * (2 + 4 + RINGTAIL_COMMIT),  # CORONA_SIGNERS
            RINGTAIL_RESPONSE,  # CORONA_RESPONSE
            cert,  # CERT_UPGRADE
        ),
    }[stream_type]
    return MSG_HEADER + payload


def _consensus(max_bytes: int) -> StreamLimit:
    return StreamLimit(
        max_bytes, validators_only=True, min_rate=64 * 1024, grace=5.0, deadline=60.0
    )


def _request(max_bytes: int) -> StreamLimit:
    return StreamLimit(max_bytes, min_rate=256.0, grace=2.0, deadline=10.0)


def node_limits(genesis: Genesis) -> LimitPolicy:
    """The bounds a validator of ``genesis`` enforces on its peers' streams."""
    n = genesis.vset.n
    dht = DHT_HEADER_LEN + DHT_MAX_PAYLOAD
    limits = {
        StreamType.HELLO: StreamLimit(HELLO_MAX, min_rate=256.0, grace=2.0, deadline=5.0),
        StreamType.TX_SUBMIT: StreamLimit(MAX_TX_SIZE, min_rate=1024.0, grace=2.0, deadline=10.0),
        StreamType.MEMPOOL_GOSSIP: StreamLimit(
            MAX_GOSSIP, min_rate=64 * 1024, grace=5.0, deadline=60.0
        ),
        StreamType.HEADER_RANGE: _request(RANGE_REQUEST),
        StreamType.STATE_CHUNK: _request(STATE_REQUEST),
        StreamType.DHT_RPC: _request(dht),
        StreamType.BLOCK_CHUNK: _request(dht),
        **{t: _consensus(largest_message(t, n)) for t in sorted(VALIDATORS_ONLY)},
    }
    client_budget = TX_WINDOW * MAX_TX_SIZE + MAX_GOSSIP + 2 * dht
    validator_budget = client_budget + sum(largest_message(t, n) for t in VALIDATORS_ONLY)
    return LimitPolicy(
        limits,
        peer_budget=client_budget,
        validator_budget=validator_budget,
        validators=frozenset(a.node_id for a in genesis.addresses),
    )
