"""Prometheus metrics of one node (``/metrics`` on the node's HTTP port, :mod:`.http.ops`).

Each node process has its own registry, with the standard process and
platform collectors (``process_cpu_seconds_total``,
``process_resident_memory_bytes``, ``process_open_fds``, ``python_info`` ...).
Nothing is copied on a timer: the counts the cores already keep at the event
(``PipelineStats``, ``Consensus.stats``, the endpoint's breach counts) are read
*at scrape time* by :class:`NodeCollector` and exported as Prometheus
counters; the histograms and the finalized-blocks counter are updated by the
node's hooks when a height is final (:meth:`NodeMetrics.finalized`) and when
a leg lands after FINAL (:meth:`NodeMetrics.upgraded`, the aggregator's
CERT_UPGRADE broadcast).

========================================  =====  ====================================
metric                                    type   meaning
========================================  =====  ====================================
zap_height                                gauge  finalized height
zap_round                                 gauge  round of the height being decided
zap_mempool_txs                           gauge  txs in the mempool
zap_peers                                 gauge  validators connected
zap_peers_height                          gauge  peers' finalized height (health rule 5)
zap_healthy                               gauge  1 when ``/health`` answers 200
zap_state_sync_chunks{of}                 gauge  a running state sync: verified, total
zap_state_sync_idle_seconds               gauge  ... seconds since its last progress
zap_state_sync_retargets                  gauge  ... times it started over at a newer block
zap_in_flight{pipeline}                   gauge  work in flight per pipeline
zap_tx_admitted_total                     ctr    txs admitted (tx receive stage 5)
zap_tx_rejected_total{stage,code}         ctr    tx streams rejected, by stage and code
zap_consensus_events_total{event}         ctr    proposed, votes_sent, finalized, ...
zap_peer_breaches_total{rule}             ctr    peers cut off for breaking a bound
zap_blocks_finalized_total                ctr    heights finalized by this process
zap_finalize_seconds                      hist   round start -> FINAL (aggregator)
zap_leg_arrival_seconds{leg}              hist   round start -> leg aggregated
zap_leg_ms{leg}                           gauge  the last such time, in ms
zap_finalize_ms                           gauge  the last finalize time, in ms
========================================  =====  ====================================
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from zapstack.node.health import assess

if TYPE_CHECKING:
    from zapstack.node.engine import HeightRecord

__all__ = ["SECONDS_BUCKETS", "NodeCollector", "NodeMetrics", "in_flight"]

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Histogram buckets (seconds after round start): legs land in ms to seconds."""
_WATCHED = 16
"""Heights whose late legs are still awaited (older ones are forgotten)."""


def in_flight(node: Any) -> dict[str, int]:
    """Work in flight per pipeline, read off a running node's parts."""
    consensus = node.consensus
    return {
        "tx_receive": int(node.rx.in_flight),
        "block_production": sum(1 for a in consensus.aggs.values() if not a.final_sent),
        "verify": len(node.executor.candidates),
        "consensus": len(consensus.corona),
    }


class NodeCollector(Collector):
    """Gauges of the current state and the cores' own counters, read at scrape time."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def describe(self) -> list[Metric]:
        return []  # collected lazily: the node's parts may not exist yet at registration

    def collect(self) -> Iterator[Metric]:
        node = self.node
        consensus = node.consensus
        health = assess(node)
        for name, doc, value in (
            ("zap_height", "finalized height", consensus.height - 1),
            ("zap_round", "round of the height being decided", consensus.round),
            ("zap_mempool_txs", "txs in the mempool", len(node.mempool)),
            ("zap_peers", "validators connected", len(health.connected)),
            ("zap_healthy", "1 when /health answers 200", int(health.ok)),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        if health.peers_height is not None:
            yield GaugeMetricFamily(
                "zap_peers_height", "peers' finalized height", value=health.peers_height
            )
        sync = node.sync.progress()
        if sync is not None:  # a state sync runs (before consensus starts)
            chunks = GaugeMetricFamily("zap_state_sync_chunks", "state sync chunks", labels=["of"])
            chunks.add_metric(["verified"], sync["chunks"])
            chunks.add_metric(["total"], sync["of"])
            yield chunks
            yield GaugeMetricFamily(
                "zap_state_sync_idle_seconds",
                "since the state sync's last progress",
                value=sync["idle_s"],
            )
            yield GaugeMetricFamily(
                "zap_state_sync_retargets",
                "times the state sync started over at a newer block",
                value=sync["retargets"],
            )
        flight = GaugeMetricFamily("zap_in_flight", "work in flight", labels=["pipeline"])
        for pipeline, n in in_flight(node).items():
            flight.add_metric([pipeline], n)
        yield flight
        yield from self._counters()

    def _counters(self) -> Iterator[Metric]:
        node = self.node
        pstats = node.mempool.stats
        yield CounterMetricFamily("zap_tx_admitted", "txs admitted (stage 5)", pstats.admitted)
        rejected = CounterMetricFamily(
            "zap_tx_rejected", "tx streams rejected", labels=["stage", "code"]
        )
        for (stage, code), n in sorted(pstats.rejected.items()):
            rejected.add_metric([stage.name, code.name], n)
        yield rejected
        events = CounterMetricFamily("zap_consensus_events", "consensus events", labels=["event"])
        for event, n in node.consensus.stats.items():
            events.add_metric([event], n)
        yield events
        breaches = CounterMetricFamily(
            "zap_peer_breaches", "peers cut off for breaking a bound", labels=["rule"]
        )
        endpoint = getattr(node, "endpoint", None)
        for rule, n in (endpoint.breach_counts if endpoint is not None else {}).items():
            breaches.add_metric([rule], n)
        yield breaches


class NodeMetrics:
    """One node's registry and its event hooks (see the module contract)."""

    def __init__(self, node: object) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.node = node
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        r.register(NodeCollector(node))
        self.finalized_total = Counter("zap_blocks_finalized", "heights finalized", registry=r)
        self.finalize_s = Histogram(
            "zap_finalize_seconds", "round start -> FINAL", buckets=SECONDS_BUCKETS, registry=r
        )
        self.leg_s = Histogram(
            "zap_leg_arrival_seconds",
            "round start -> leg aggregated",
            ["leg"],
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.leg_ms = Gauge("zap_leg_ms", "last leg time after round start", ["leg"], registry=r)
        self.finalize_ms = Gauge("zap_finalize_ms", "last finalize time", registry=r)
        self.watched: dict[int, tuple[HeightRecord, set[str]]] = {}
        """Height -> (our aggregator record, legs already observed)."""

    def finalized(self, record: HeightRecord) -> None:
        """A height is final here: count it; observe its times if we aggregated it."""
        self.finalized_total.inc()
        if record.finalized_ms:
            self.finalize_s.observe(record.finalized_ms / 1000)
            self.finalize_ms.set(record.finalized_ms)
        if record.legs_ms:
            self.watched[record.height] = (record, set())
            for h in sorted(self.watched)[:-_WATCHED]:
                del self.watched[h]
            self._observe_legs(record.height)

    def upgraded(self, height: int) -> None:
        """Our round at ``height`` aggregated another leg after FINAL."""
        self._observe_legs(height)

    def _observe_legs(self, height: int) -> None:
        entry = self.watched.get(height)
        if entry is None:
            return
        record, seen = entry
        for leg, ms in record.legs_ms.items():
            if ms >= 0 and leg not in seen:
                seen.add(leg)
                self.leg_s.labels(leg=leg).observe(ms / 1000)
                self.leg_ms.labels(leg=leg).set(ms)
        if len(seen) == 4:
            del self.watched[height]
