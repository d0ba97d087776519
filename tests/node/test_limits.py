"""The node's stream bounds: every size is the largest legal message of its type, computed
here independently from the format docs' numbers, and docs/formats/streams.md §Limits
states exactly the code's table."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from zapstack.node.genesis import load_genesis
from zapstack.node.handlers import stream_handlers
from zapstack.node.limits import VALIDATORS_ONLY, largest_cert, node_limits
from zapstack.transport.limits import LimitPolicy
from zapstack.transport.streams import StreamType

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
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| byte | type | max bytes"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


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
