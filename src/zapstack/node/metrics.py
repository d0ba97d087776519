"""Prometheus metrics of one node (``/metrics`` on the node's HTTP port, :mod:`.http.ops`).

Each node process has its own registry.  Exported:

=====================================  =========================================
metric                                 meaning
=====================================  =========================================
zap_height                             finalized height
zap_round                              current consensus round
zap_mempool_txs                        txs in the mempool (in flight to blocks)
zap_tx_admitted                        txs admitted since start (tx receive stage 5)
zap_tx_rejected{stage}                 tx streams rejected since start, by stage
zap_blocks_finalized_total             blocks committed (a Prometheus counter)
zap_in_flight{pipeline}                work in flight per pipeline: tx_receive
                                       (partially received tx streams),
                                       block_production (rounds this node
                                       aggregates), verify (speculative
                                       candidate blocks on branches),
                                       consensus (Corona sessions open)
zap_leg_ms{leg}                        last aggregated leg time after round start
                                       (updated on cert upgrades too)
zap_finalize_ms                        last round's time to finality
zap_consensus_events{event}            proposals, votes, round changes, rejects
zap_peers                              connected validator peers
zap_peer_breaches{rule}                peers disconnected for breaking a stream
                                       bound since start, by rule (size,
                                       privileged, budget, rate, deadline)
=====================================  =========================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from zapstack.node.engine import HeightRecord

__all__ = ["NodeMetrics", "in_flight"]


def in_flight(node: Any) -> dict[str, int]:
    """Work in flight per pipeline, read off a running node's parts."""
    consensus = node.consensus
    return {
        "tx_receive": int(node.rx.in_flight),
        "block_production": sum(1 for a in consensus.aggs.values() if not a.final_sent),
        "verify": len(node.executor.candidates),
        "consensus": len(consensus.corona),
    }


class NodeMetrics:
    """Owns one registry; ``update`` is fed the node's status dict."""

    def __init__(self, node: object) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("zap_height", "finalized height", registry=r)
        self.round = Gauge("zap_round", "current consensus round", registry=r)
        self.mempool = Gauge("zap_mempool_txs", "txs in the mempool", registry=r)
        self.node = node
        self.admitted = Gauge("zap_tx_admitted", "txs admitted since start (stage 5)", registry=r)
        self.rejected = Gauge(
            "zap_tx_rejected", "tx streams rejected since start, by stage", ["stage"], registry=r
        )
        self.in_flight = Gauge(
            "zap_in_flight", "work in flight per pipeline", ["pipeline"], registry=r
        )
        self.finalized_total = Counter("zap_blocks_finalized", "blocks committed", registry=r)
        self.leg_ms = Gauge(
            "zap_leg_ms", "leg aggregation time after round start", ["leg"], registry=r
        )
        self.finalize_ms = Gauge(
            "zap_finalize_ms", "time to finality of the last round", registry=r
        )
        self.events = Gauge("zap_consensus_events", "consensus event counts", ["event"], registry=r)
        self.peers = Gauge("zap_peers", "connected validator peers", registry=r)
        self.breaches = Gauge(
            "zap_peer_breaches", "peers disconnected for breaking a bound", ["rule"], registry=r
        )

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
        for pipeline, n in in_flight(self.node).items():
            self.in_flight.labels(pipeline=pipeline).set(n)
        endpoint = getattr(self.node, "endpoint", None)
        for rule, n in (endpoint.breach_counts if endpoint is not None else {}).items():
            self.breaches.labels(rule=rule).set(n)
        for rec in status.get("recent", [])[-4:]:
            for leg, ms in rec.get("legs_ms", {}).items():
                if ms >= 0:
                    self.leg_ms.labels(leg=leg).set(ms)

    def finalized(self, record: HeightRecord) -> None:
        self.finalized_total.inc()
        for leg, ms in record.legs_ms.items():
            if ms >= 0:
                self.leg_ms.labels(leg=leg).set(ms)
        if record.finalized_ms:
            self.finalize_ms.set(record.finalized_ms)
