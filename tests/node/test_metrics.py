"""A node's registry: the cores' counters read at scrape, event-driven histograms, process metrics."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from zapstack.errors import Stage, WireCode
from zapstack.mempool.stats import PipelineStats
from zapstack.node.engine import HeightRecord
from zapstack.node.health import PeerHeights
from zapstack.node.metrics import SECONDS_BUCKETS, NodeMetrics, in_flight


class Pool(list[bytes]):
    """A mempool's length and its stats."""

    stats: PipelineStats


def fake_node() -> SimpleNamespace:
    consensus = SimpleNamespace(
        height=10,
        round=1,
        halted=False,
        aggs={1: SimpleNamespace(final_sent=False), 2: SimpleNamespace(final_sent=True)},
        corona={(5, 0): None},
        stats={"proposed": 4, "cert_upgrades": 0},
    )
    pool = Pool([b"a", b"b", b"c"])
    pool.stats = PipelineStats()
    vset = SimpleNamespace(n=4, threshold_weight=3, weight_of=lambda ix: len(set(ix)))
    return SimpleNamespace(
        me=0,
        g=SimpleNamespace(vset=vset),
        consensus=consensus,
        mempool=pool,
        rx=SimpleNamespace(in_flight=7),  # a property on TxReceiver
        executor=SimpleNamespace(candidates=(1, 2)),
        endpoint=SimpleNamespace(breach_counts={"rate": 3, "privileged": 1}),
        conns=SimpleNamespace(connected=lambda: [1, 2]),
        sync=SimpleNamespace(catching_up=False, heights=PeerHeights(4, 0), progress=lambda: None),
        needs_sync=False,
        fatal=None,
    )


def samples(m: NodeMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(m.registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_in_flight_per_pipeline() -> None:
    assert in_flight(fake_node()) == {
        "tx_receive": 7,
        "block_production": 1,
        "verify": 2,
        "consensus": 1,
    }


def test_scrape_reads_state_and_counters_as_they_are_now() -> None:
    node = fake_node()
    m = NodeMetrics(node)
    got = samples(m)
    assert got[("zap_height", ())] == 9 and got[("zap_round", ())] == 1
    assert got[("zap_mempool_txs", ())] == 3 and got[("zap_peers", ())] == 2
    assert got[("zap_healthy", ())] == 1
    assert got[("zap_in_flight", (("pipeline", "tx_receive"),))] == 7
    assert got[("zap_tx_admitted_total", ())] == 0
    # the cores count at the event; the next scrape shows it, no timer in between
    node.mempool.stats.admitted += 40
    node.mempool.stats.reject(Stage.MAGIC, WireCode.BAD_MAGIC)
    node.mempool.stats.reject(Stage.MAGIC, WireCode.BAD_MAGIC)
    node.consensus.stats["proposed"] += 1
    got = samples(m)
    assert got[("zap_tx_admitted_total", ())] == 40
    key = (("code", WireCode.BAD_MAGIC.name), ("stage", "MAGIC"))
    assert got[("zap_tx_rejected_total", key)] == 2
    assert got[("zap_consensus_events_total", (("event", "proposed"),))] == 5
    assert got[("zap_peer_breaches_total", (("rule", "rate"),))] == 3
    assert got[("process_cpu_seconds_total", ())] >= 0  # the standard process collector
    assert ("python_info", ()) in {(k[0], ()) for k in got}


def test_a_running_state_sync_is_exported_and_absent_otherwise() -> None:
    node = fake_node()
    m = NodeMetrics(node)
    assert not any(name.startswith("zap_state_sync") for name, _ in samples(m))
    record = {"target": 8, "chunks": 412, "of": 1024, "entries": 41200, "seconds": 20.0,
              "idle_s": 1.5, "retargets": 1, "not_found": 6}  # fmt: skip
    node.sync.progress = lambda: record
    got = samples(m)
    assert got[("zap_state_sync_chunks", (("of", "verified"),))] == 412
    assert got[("zap_state_sync_chunks", (("of", "total"),))] == 1024
    assert got[("zap_state_sync_idle_seconds", ())] == 1.5
    assert got[("zap_state_sync_retargets", ())] == 1


def test_finalize_and_leg_histograms_observe_each_leg_once() -> None:
    m = NodeMetrics(fake_node())
    r = HeightRecord(
        5, 0, "ab" * 32, 0, 0, "PQ-fast", legs_ms={"bls": 12, "pulsar": 30}, finalized_ms=30
    )
    m.finalized(r)
    r.legs_ms["corona"] = 400  # the aggregator's round lands a leg after FINAL ...
    m.upgraded(5)  # ... and broadcasts CERT_UPGRADE
    m.upgraded(5)  # a second broadcast observes nothing new
    m.upgraded(99)  # a height we did not aggregate
    r.legs_ms["magnetar"] = -1  # failed: no time
    m.upgraded(5)
    m.finalized(HeightRecord(6, 0, "cd" * 32, 0, 1, "PQ-fast"))  # another aggregator's
    got = samples(m)
    assert got[("zap_blocks_finalized_total", ())] == 2
    assert got[("zap_finalize_seconds_count", ())] == 1
    assert got[("zap_finalize_seconds_sum", ())] == 0.030
    for leg, ms in (("bls", 12), ("pulsar", 30), ("corona", 400)):
        assert got[("zap_leg_arrival_seconds_count", (("leg", leg),))] == 1
        assert got[("zap_leg_arrival_seconds_sum", (("leg", leg),))] == ms / 1000
        assert got[("zap_leg_ms", (("leg", leg),))] == ms
        first = min(b for b in SECONDS_BUCKETS if b >= ms / 1000)
        assert got[("zap_leg_arrival_seconds_bucket", (("le", str(first)), ("leg", leg)))] == 1
    assert ("zap_leg_arrival_seconds_count", (("leg", "magnetar"),)) not in got
    assert got[("zap_finalize_ms", ())] == 30


def test_watched_heights_are_bounded() -> None:
    m = NodeMetrics(fake_node())
    for h in range(1, 100):
        m.finalized(HeightRecord(h, 0, "ab" * 32, 0, 0, "PQ-off", legs_ms={"bls": 1}))
    assert len(m.watched) <= 16 and max(m.watched) == 99
