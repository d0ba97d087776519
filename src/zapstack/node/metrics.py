"""Prometheus metrics of one node (``/metrics`` on 127.0.0.1:<metrics port>).

Each node process has its own registry.  Exported:

=====================================  =========================================
metric                                 meaning
=====================================  =========================================
zap_height                             finalized height
zap_round                              current consensus round
zap_mempool_txs                        txs in the mempool (in flight to blocks)
zap_tx_admitted_total                  txs admitted (tx receive stage 5)
zap_tx_rejected_total{stage}           tx streams rejected, by pipeline stage
zap_blocks_finalized_total             blocks committed
zap_leg_ms{leg}                        last aggregated leg time after round start
zap_finalize_ms                        last round's time to finality
zap_consensus_events_total{event}      proposals, votes, round changes, rejects
zap_peers                              connected validator peers
=====================================  =========================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

if TYPE_CHECKING:
    from zapstack.node.consensus import HeightRecord

__all__ = ["NodeMetrics"]


class NodeMetrics:
    """Owns one registry; ``update`` is fed the node's status dict."""

    def __init__(self, node: object) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("zap_height", "finalized height", registry=r)
        self.round = Gauge("zap_round", "current consensus round", registry=r)
        self.mempool = Gauge("zap_mempool_txs", "txs in the mempool", registry=r)
        self.admitted = Gauge("zap_tx_admitted_total", "txs admitted (stage 5)", registry=r)
        self.rejected = Gauge(
            "zap_tx_rejected_total", "tx streams rejected by stage", ["stage"], registry=r
        )
        self.finalized_total = Counter("zap_blocks_finalized", "blocks committed", registry=r)
        self.leg_ms = Gauge(
            "zap_leg_ms", "leg aggregation time after round start", ["leg"], registry=r
        )
        self.finalize_ms = Gauge(
            "zap_finalize_ms", "time to finality of the last round", registry=r
        )
        self.events = Gauge(
            "zap_consensus_events_total", "consensus event counts", ["event"], registry=r
        )
        self.peers = Gauge("zap_peers", "connected validator peers", registry=r)

    def serve(self, port: int) -> None:
        """Start the /metrics HTTP server on 127.0.0.1."""
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def update(self, status: dict[str, Any]) -> None:
        self.height.set(status["height"])
        self.round.set(status["round"])
        self.mempool.set(status["mempool"])
        self.admitted.set(status["admitted"])
        for stage, n in status["rejects"].items():
            self.rejected.labels(stage=stage).set(n)
        for event, n in status["stats"].items():
            self.events.labels(event=event).set(n)
        self.peers.set(len(status["peers"]))

    def finalized(self, record: HeightRecord) -> None:
        self.finalized_total.inc()
        for leg, ms in record.legs_ms.items():
            if ms >= 0:
                self.leg_ms.labels(leg=leg).set(ms)
        if record.finalized_ms:
            self.finalize_ms.set(record.finalized_ms)
