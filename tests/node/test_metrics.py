from types import SimpleNamespace

from prometheus_client import generate_latest

from zapstack.node.metrics import NodeMetrics, in_flight


def fake_node() -> SimpleNamespace:
    consensus = SimpleNamespace(
        aggs={1: SimpleNamespace(final_sent=False), 2: SimpleNamespace(final_sent=True)},
        corona={(5, 0): None},
    )
    return SimpleNamespace(
        consensus=consensus,
        rx=SimpleNamespace(in_flight=7),  # a property on TxReceiver
        executor=SimpleNamespace(candidates=(1, 2)),
        endpoint=SimpleNamespace(breach_counts={"rate": 3, "privileged": 1}),
    )


def test_in_flight_per_pipeline() -> None:
    assert in_flight(fake_node()) == {
        "tx_receive": 7,
        "block_production": 1,
        "verify": 2,
        "consensus": 1,
    }


def test_update_exports_status_and_legs() -> None:
    m = NodeMetrics(fake_node())
    status = {
        "height": 9,
        "round": 1,
        "mempool": 3,
        "admitted": 40,
        "rejects": {"MAGIC": 2},
        "stats": {"proposed": 4},
        "peers": [1, 2],
        "recent": [{"legs_ms": {"bls": 12, "corona": 400, "magnetar": -1}}],
    }
    m.update(status)
    text = generate_latest(m.registry).decode()
    for line in (
        "zap_height 9.0",
        "zap_tx_admitted 40.0",
        'zap_tx_rejected{stage="MAGIC"} 2.0',
        'zap_in_flight{pipeline="tx_receive"} 7.0',
        'zap_leg_ms{leg="corona"} 400.0',
        'zap_consensus_events{event="proposed"} 4.0',
        "zap_peers 2.0",
        'zap_peer_breaches{rule="rate"} 3.0',
        'zap_peer_breaches{rule="privileged"} 1.0',
    ):
        assert line in text, line
    assert 'leg="magnetar"' not in text  # a failed leg has no time
