"""The node's stream bounds: every size is the largest legal message of its type, computed
here independently from the format docs' numbers, and docs/formats/streams.md §Limits
states exactly the code's table."""

from __future__ import annotations

import contextlib
import types
from pathlib import Path

import pytest

from zapstack.node.genesis import load_genesis
from zapstack.node.handlers import stream_handlers
from zapstack.node.limits import VALIDATORS_ONLY, largest_cert, node_limits
from zapstack.transport.limits import LimitPolicy, Rule
from zapstack.transport.streams import StreamType

from ..conftest import markdown_rows

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats" / "streams.md"
MiB = 1024 * 1024


def _policy(n: int) -> LimitPolicy:
    return node_limits(types.SimpleNamespace(vset=types.SimpleNamespace(n=n), addresses=()))  # type: ignore[arg-type]


def _cert(n: int) -> int:
    """quasarcert.md: 105 fixed bytes (89 + four u32 lengths); BLS bitmap + 96; Pulsar
    bitmap + 3309 per signer; Corona 15,648; Magnetar bitmap + 17,088 per signer."""
    bitmap = -(-n // 8)
    return 89 + 16 + bitmap + 96 + bitmap + 3309 * n + 15_648 + bitmap + 17_088 * n


@pytest.mark.parametrize("n", [1, 4, 7, 8, 9, 40, 100])
def test_consensus_bounds_are_the_largest_legal_messages(n: int) -> None:
    limits = _policy(n).limits
    assert largest_cert(n) == _cert(n)
    assert limits[StreamType.PROPOSAL].max_bytes == 15 + 64 * MiB
    assert limits[StreamType.BLOCK_PUSH].max_bytes == 15 + 4 + _cert(n) + 64 * MiB
    shares = max(1 + 17_088, 702_498, 2 + n * (2 + 4 + 702_498), 12_578, _cert(n))
    assert limits[StreamType.CERT_SHARES].max_bytes == 15 + shares
    for t in VALIDATORS_ONLY:
        assert limits[t].validators_only
    assert not any(lim.validators_only for t, lim in limits.items() if t not in VALIDATORS_ONLY)


def test_client_bounds_come_from_the_formats() -> None:
    limits = _policy(4).limits
    assert limits[StreamType.TX_SUBMIT].max_bytes == 32 * 1024  # MAX_TX_SIZE
    assert limits[StreamType.MEMPOOL_GOSSIP].max_bytes == 4 * MiB  # MAX_GOSSIP
    assert limits[StreamType.HELLO].max_bytes == 512
    assert limits[StreamType.HEADER_RANGE].max_bytes == 1 + 1 + 8 + 4  # version flags start count
    assert limits[StreamType.STATE_CHUNK].max_bytes == 1 + 32 + 1 + 4 + 4


def test_every_served_stream_type_has_a_row(devnet_home: Path) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    policy = node_limits(g)
    node = types.SimpleNamespace(txsvc=types.SimpleNamespace(factory=None))
    served = set(stream_handlers(node)) | {  # type: ignore[arg-type]
        StreamType.HELLO,
        StreamType.DHT_RPC,
        StreamType.BLOCK_CHUNK,
    }
    assert served == set(policy.limits)
    assert policy.validators == frozenset(a.node_id for a in g.addresses)
    assert policy.peer_budget < 16 * MiB < policy.validator_budget


def _doc_rows() -> list[list[str]]:
    return markdown_rows(DOC, "| byte | type | max bytes")


def test_the_documented_table_is_the_code() -> None:
    p4, p40 = _policy(4), _policy(40)
    rows = {int(r[0], 16): r for r in _doc_rows()}
    assert set(rows) == {int(t) for t in p4.limits}
    for t, lim in p4.limits.items():
        _, name, size, _, only, rate, grace, deadline = rows[int(t)]
        expected = (
            f"n=4: {lim.max_bytes}; n=40: {p40.limits[t].max_bytes}"
            if t in VALIDATORS_ONLY
            else str(lim.max_bytes)
        )
        assert (name, size, only) == (t.name, expected, "yes" if lim.validators_only else "no")
        assert (float(rate), float(grace), float(deadline)) == (
            lim.min_rate,
            lim.grace,
            lim.deadline,
        )
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert f"= {p4.peer_budget} bytes" in text
    assert f"({p4.validator_budget} bytes at n = 4, {p40.validator_budget} at n = 40)" in text


# ------------------------------------------------------- real QUIC, a real validator

_ATTACKER = r"""
import asyncio, json, sys
from zapstack.errors import ZapError
from zapstack.transport.driver import Endpoint
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.qh3_adapter import Qh3Binding
from zapstack.transport.streams import StreamType
from zapstack.zap.schema import MAGIC

host, port, node_id, mode = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]), sys.argv[4]


async def flood(peer, out):
    # 40 PROPOSAL streams, 8 MiB each in 1 MiB writes, never finished
    streams = [await peer.open_stream(StreamType.PROPOSAL) for _ in range(40)]
    for _ in range(8):
        for s in streams:
            await s.write(b"\x01" + bytes((1 << 20) - 1))  # msg type PROPOSAL first
            out["written"] += 1 << 20


async def slowloris(peer, out):
    # 50 TX_SUBMIT streams, one byte of a tx frame's magic each every 3 s
    streams = [await peer.open_stream(StreamType.TX_SUBMIT) for _ in range(50)]
    for i in range(len(MAGIC)):
        for s in streams:
            await s.write(MAGIC[i : i + 1])
            out["written"] += 1
        await asyncio.sleep(3.0)


async def main():
    loop = asyncio.get_running_loop()
    endpoint = Endpoint(Qh3Binding(), NodeIdentity.generate(), {})
    peer = await endpoint.dial(host, port, node_id)
    out = {"written": 0}
    start = loop.time()
    try:
        await asyncio.wait_for({"flood": flood, "slowloris": slowloris}[mode](peer, out), 20)
    except (ZapError, TimeoutError) as exc:
        out["stopped_by"] = type(exc).__name__
    try:
        await peer.wait_closed(20 - (loop.time() - start))
    except TimeoutError:
        pass
    info = peer.close_info
    out.update(closed=peer.session.closed, code=info.code if info else None,
               reason=info.reason if info else "", after=loop.time() - start)
    print(json.dumps(out))
    await asyncio.wait_for(endpoint.close(), 5)


asyncio.run(main())
"""


def test_a_non_validator_cannot_make_a_validator_hold_memory(tmp_path: Path) -> None:
    """Issue 13: a non-validator's 40 unfinished 8 MiB consensus streams raise a real
    validator's RSS by <= 64 MiB and that peer is disconnected (before the fix: ~440 MiB,
    never disconnected); 50 slowloris TX_SUBMIT streams (one byte every 3 s) get the peer
    disconnected too.  The attacker runs in its own process, so its own send buffers do
    not count; RSS is the validator process's (psutil)."""
    import asyncio
    import json
    import subprocess
    import sys

    import psutil

    from zapstack.devnet.processes import free_port_base
    from zapstack.errors import WireCode
    from zapstack.node.genesis import make_devnet
    from zapstack.node.node import Node
    from zapstack.transport.bindings import run_bounded

    home = tmp_path / "net"
    make_devnet(home, 4, base_port=free_port_base(4), users=4)
    g = load_genesis(home / "genesis.json")
    a0 = g.addresses[0]
    me = psutil.Process()

    def breaches(node: Node) -> list[Rule]:
        assert node.endpoint is not None
        return [b.rule for _, b in node.endpoint.breaches]

    async def attack(mode: str) -> tuple[dict[str, object], int]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _ATTACKER, a0.host, str(a0.port), a0.node_id.hex(), mode,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        base = peak = me.memory_info().rss
        while proc.returncode is None:
            peak = max(peak, me.memory_info().rss)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.01)
        assert proc.stdout is not None
        report = json.loads((await proc.stdout.read()).decode().strip().splitlines()[-1])
        return report, peak - base

    async def main() -> tuple[dict[str, object], int, dict[str, object]]:
        node = Node(home / "node-0")
        serving = asyncio.create_task(node.serve())
        try:
            await asyncio.sleep(1.0)  # listening, warm
            flood, grew = await attack("flood")
            assert breaches(node) == [Rule.PRIVILEGED]  # the node disconnected it
            slow, _ = await attack("slowloris")
            assert breaches(node) == [Rule.PRIVILEGED, Rule.RATE]
            assert node.endpoint is not None  # counted for the metric, logged at INFO
            assert node.endpoint.breach_counts == {"privileged": 1, "rate": 1}
            assert not serving.done()
            return flood, grew, slow
        finally:
            node.stop()
            await asyncio.wait_for(serving, 10)

    flood, grew, slow = run_bounded(main(), 60)
    print(f"flood: RSS +{grew / MiB:.1f} MiB, {flood}; slowloris: {slow}")
    assert flood["closed"] and grew <= 64 * MiB
    assert slow["closed"] and slow["code"] == WireCode.TIMEOUT
