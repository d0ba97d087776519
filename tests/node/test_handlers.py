"""The node's stream glue: whole-message buffering and gossip batches."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from zapstack.errors import Stage, WireCode
from zapstack.mempool import Mempool
from zapstack.node import handlers
from zapstack.node.genesis import devnet_user, load_genesis
from zapstack.node.handlers import Collect, take_gossip
from zapstack.transport.events import End, HandlerAction, Reject
from zapstack.verify.sigcache import VerifiedCache
from zapstack.zap import Signer, SigScheme
from zapstack.zap.frames import build_transfer, parse_tx


def test_collect_hands_over_the_whole_message_at_fin() -> None:
    got: list[bytes] = []

    def done(data: bytes) -> list[HandlerAction] | None:
        got.append(data)
        return None

    c = Collect(8, done)
    assert c.on_data(b"abc") == [] and c.on_data(b"def") == []
    assert c.on_end() == [] and got == [b"abcdef"]


def test_collect_rejects_a_stream_over_its_limit_and_drops_it() -> None:
    c = Collect(4, lambda data: None)
    assert c.on_data(b"abcde") == [Reject(WireCode.STREAM_PROTOCOL_VIOLATION)]
    assert c.buf == bytearray()


def test_collect_checks_the_first_byte_only() -> None:
    seen: list[int] = []

    def first(kind: int) -> list[HandlerAction]:
        seen.append(kind)
        return [Reject(WireCode.STREAM_PROTOCOL_VIOLATION)] if kind == 0xFF else []

    assert Collect(64, lambda d: None, first).on_data(b"\xff..") == [
        Reject(WireCode.STREAM_PROTOCOL_VIOLATION)
    ]
    ok = Collect(64, lambda d: None, first)
    assert ok.on_data(b"\x01\xff") == [] and ok.on_data(b"\xff") == []
    assert seen == [0xFF, 0x01]


def test_collect_drops_a_partial_message_when_the_stream_ends_early() -> None:
    got: list[bytes] = []
    c = Collect(64, lambda data: got.append(data))  # type: ignore[func-returns-value]
    c.on_data(b"partial")
    c.on_terminated(End.RESET, int(WireCode.STREAM_PROTOCOL_VIOLATION))
    assert c.buf == bytearray() and got == []


def test_gossip_takes_good_txs_skips_bad_ones_and_stops_at_a_bad_length(
    devnet_home: Path,
) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    seed = bytes.fromhex(g.raw["devnet_seed"])
    to = hashlib.sha256(devnet_user(seed, 1).public_key).digest()
    user = devnet_user(seed, 0)
    good = [build_transfer(user, to, 10, 2, nonce, g.chain_id) for nonce in range(3)]
    bad = bytearray(good[1])
    bad[-1] ^= 1  # signature broken: parse fails, the batch goes on
    truncated = good[2][:-1]  # its length field runs past the batch: the batch ends
    pool = Mempool()
    take_gossip(pool, g.chain_id, good[0] + bytes(bad) + good[2] + truncated)
    assert [parse_tx(t).tx_id in pool for t in good] == [True, False, True]
    assert len(pool) == 2


def test_gossip_obeys_admission_and_checks_the_pool_before_the_signature(
    devnet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zero-funds flood by gossip costs lookups, not verifies; admitted ones are cached."""
    g = load_genesis(devnet_home / "genesis.json")
    seed = bytes.fromhex(g.raw["devnet_seed"])
    funded = devnet_user(seed, 0)
    to = hashlib.sha256(devnet_user(seed, 1).public_key).digest()
    broke = [Signer(SigScheme.ED25519, hashlib.sha256(b"broke%d" % i).digest()) for i in range(5)]
    flood = b"".join(build_transfer(s, to, 10, 9, 0, g.chain_id) for s in broke)
    honest = [build_transfer(funded, to, 10, 2, n, g.chain_id) for n in range(2)]
    balances = {hashlib.sha256(funded.public_key).digest(): 1_000}
    pool = Mempool(balance=lambda s: balances.get(s, 0))
    verified: list[bytes] = []
    real = handlers.verify_tx

    def counting(view: Any) -> bool:
        verified.append(view.tx_id)
        return real(view)

    monkeypatch.setattr(handlers, "verify_tx", counting)
    cache = VerifiedCache()
    assert take_gossip(pool, g.chain_id, flood + b"".join(honest), cache) == 2
    assert len(verified) == 2  # the 5 unfunded txs never reached a signature check
    assert pool.stats.rejected[(Stage.MEMPOOL, WireCode.INSUFFICIENT_BALANCE)] == 5
    assert all(cache.verified(parse_tx(t)) for t in honest) and len(cache) == 2


def test_a_consensus_stream_from_a_non_validator_is_refused_on_its_first_byte() -> None:
    import types

    from zapstack.mempool.reputation import Reputation
    from zapstack.node.wire import MsgType
    from zapstack.transport.handler import StreamInfo
    from zapstack.transport.streams import STREAM_TYPES, StreamType

    node: Any = types.SimpleNamespace(
        conns=types.SimpleNamespace(by_node_id={b"v" * 32: 1}),
        rx=types.SimpleNamespace(reputation=Reputation()),
        inbox=None,
    )
    spec = STREAM_TYPES[StreamType.PROPOSAL]
    stranger = StreamInfo(2, StreamType.PROPOSAL, spec, False, b"s" * 32)
    h = handlers._consensus_handler(node, stranger)
    assert h.on_data(bytes([MsgType.PROPOSAL]) + bytes(100)) == [
        Reject(WireCode.STREAM_PROTOCOL_VIOLATION)
    ]
    validator = StreamInfo(2, StreamType.PROPOSAL, spec, False, b"v" * 32)
    h = handlers._consensus_handler(node, validator)
    assert h.on_data(bytes([MsgType.PROPOSAL]) + bytes(100)) == []
